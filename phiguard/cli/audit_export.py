"""``phiguard audit export`` and ``phiguard audit sources`` (added to the ``audit`` group)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from phiguard.cli.common import FormatOpt, HomeOpt, err, open_app, out, print_json
from phiguard.clock import parse_ts
from phiguard.errors import UsageError


def _ts(text: str | None, what: str) -> object:
    if text is None:
        return None
    try:
        return parse_ts(text)
    except ValueError as exc:
        raise UsageError(f"{what} is not an ISO-8601 time: {text!r}") from exc


def register(app: typer.Typer) -> None:
    from phiguard.cli.audit import audit_app

    @audit_app.command("export")
    def export_cmd(
        ctx: typer.Context,
        fmt: Annotated[
            str,
            typer.Option(
                "--format",
                help="fhir (Bundles of AuditEvents, one per line), fhir-ndjson "
                "(one AuditEvent per line) or ocsf (one OCSF event per line).",
            ),
        ],
        output: Annotated[
            Path | None,
            typer.Option(
                "--output", "-o", help="Write to this new file instead of standard output."
            ),
        ] = None,
        since: Annotated[str | None, typer.Option(help="Events at or after this time.")] = None,
        until: Annotated[str | None, typer.Option(help="Events before this time.")] = None,
        source: Annotated[str | None, typer.Option(help="Only this source system.")] = None,
        account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
        ocsf_class: Annotated[
            str,
            typer.Option(
                "--ocsf-class",
                help="datastore (Datastore Activity 6005) or api (API Activity 6003).",
            ),
        ] = "datastore",
        bundle_size: Annotated[int, typer.Option(help="Events per FHIR Bundle.")] = 1000,
        home: HomeOpt = None,
    ) -> None:
        """Export access events for a SIEM: FHIR AuditEvent bundles or OCSF NDJSON."""
        from phiguard.audit.export import export, export_to_file

        phg = open_app(ctx, home)
        kw: dict[str, Any] = dict(
            fmt=fmt,
            since=_ts(since, "--since"),
            until=_ts(until, "--until"),
            source=source,
            account=account,
            ocsf_class=ocsf_class,
            bundle_size=bundle_size,
        )
        if output is not None:
            result = export_to_file(phg, output, **kw)
            err.print(
                f"exported {result.events:,} events as {result.documents:,} {fmt} "
                f"document(s) to {output}",
                markup=False,
                soft_wrap=True,
            )
        else:
            result = export(phg, sys.stdout, **kw)

    @audit_app.command("sources")
    def sources_cmd(
        ctx: typer.Context,
        heartbeat: Annotated[
            list[str] | None,
            typer.Option(
                "--heartbeat",
                help="SOURCE=SECONDS: give one source its own heartbeat interval "
                "(SOURCE=default to go back to the setting). Repeatable.",
            ),
        ] = None,
        fmt: FormatOpt = "text",
        home: HomeOpt = None,
    ) -> None:
        """Per-source completeness: last sequence number, open gaps, silent sources."""
        from phiguard.audit import completeness
        from phiguard.audit.ingest import sync

        phg = open_app(ctx, home)
        for item in heartbeat or []:
            name, _, value = item.partition("=")
            if not name or not value:
                raise UsageError("--heartbeat takes SOURCE=SECONDS")
            if value == "default":
                completeness.set_heartbeat(phg, name, None)
            elif value.isdigit() and int(value) > 0:
                completeness.set_heartbeat(phg, name, int(value))
            else:
                raise UsageError("--heartbeat SECONDS must be a positive whole number")
        sync(phg)
        completeness.check_heartbeats(phg)
        rows = completeness.status(phg)
        if fmt == "json":
            print_json([r.as_dict() for r in rows])
        else:
            if not rows:
                out.print("no events ingested yet")
            for r in rows:
                state = "complete" if r.complete else "INCOMPLETE"
                if r.silent_since and not r.open_gaps:
                    state = "SILENT"
                out.print(
                    f"{r.source}: {r.events:,} events, last seq {r.high_seq}, "
                    f"last heard {r.last_seen.isoformat(timespec='seconds')} — {state}",
                    markup=False,
                    soft_wrap=True,
                )
                for a, b in r.open_gaps[:10]:
                    out.print(
                        f"  missing seq {a}–{b}" if a != b else f"  missing seq {a}",
                        markup=False,
                        soft_wrap=True,
                    )
                if len(r.open_gaps) > 10:
                    out.print(f"  … {len(r.open_gaps) - 10} more gaps ({r.missing:,} missing)")
                if r.silent_since:
                    out.print(
                        f"  silent since {r.silent_since.isoformat(timespec='seconds')}",
                        markup=False,
                        soft_wrap=True,
                    )
        if any(not r.complete for r in rows):
            raise typer.Exit(1)
