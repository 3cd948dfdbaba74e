"""``phiguard detect``, ``phiguard watch`` and ``phiguard alerts list|show|resolve|stats``."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer

from phiguard.cli.common import HomeOpt, err, open_app, out, print_json
from phiguard.clock import parse_ts
from phiguard.errors import InputError, UsageError

SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="Only events at or after this time (ISO-8601; no offset = Hong Kong time)."
    ),
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only events before this time.")]
FmtOpt = Annotated[str, typer.Option("--format", help="Output format: text or json.")]
SEV_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "dim"}

alerts_app = typer.Typer(
    help="Detection alerts: list, show, resolve with a verdict, accuracy.", no_args_is_help=True
)


def _ts(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_ts(text)
    except ValueError:
        raise InputError(f"{name}: not an ISO-8601 time: {text!r}") from None


def _fmt(fmt: str) -> str:
    if fmt not in {"text", "json"}:
        raise UsageError(f"--format must be text or json, not {fmt!r}")
    return fmt


def _print_alerts(rows: list[dict[str, object]]) -> None:
    if not rows:
        out.print("no alerts")
        return
    for a in rows:
        style = SEV_STYLE.get(str(a["severity"]), "")
        who = a["account_id"] or "-"
        vendor = f" ({a['vendor_id']})" if a.get("vendor_id") else ""
        out.print(
            f"[{style}]{a['severity'].upper():<8}[/] {a['alert_id']}  {a['rule']:<20} "  # type: ignore[attr-defined]
            f"{who}{vendor}  {a['first_ts']} → {a['last_ts']}  "
            f"{a['patient_count']:,} patients  score {a['score']}",
            highlight=False,
        )
        for r in a["reasons"]:  # type: ignore[attr-defined]
            out.print(f"    · {r}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect(
        ctx: typer.Context,
        since: SinceOpt = None,
        until: UntilOpt = None,
        fmt: FmtOpt = "text",
        engine: Annotated[
            str | None,
            typer.Option("--engine", help="duckdb or spark (default: the engine setting)."),
        ] = None,
        home: HomeOpt = None,
    ) -> None:
        """Run the detection rules over the access events; print alerts, most severe first."""
        from phiguard.detection.alerts import as_json
        from phiguard.detection.service import detect as run_detect

        fmt = _fmt(fmt)
        start, end = _ts(since, "--since"), _ts(until, "--until")
        phg = open_app(ctx, home)
        outcome = run_detect(phg, since=start, until=end, engine=engine)
        rows = [as_json(a, phg.settings.timezone) for a in outcome.alerts if a.status == "open"]
        if fmt == "json":
            print_json(rows)
            return
        _print_alerts(rows)
        ex = outcome.result.explain
        if ex.get("events"):
            out.print(
                f"\n{ex['events']:,} accesses checked on {outcome.engine} in "
                f"{outcome.seconds:.1f} s; {ex['explained_share']:.1%} explained by "
                f"encounters, departments or grants; {len(outcome.raised)} new or "
                "escalated alert(s)",
                highlight=False,
            )

    @app.command("watch")
    def watch(
        ctx: typer.Context,
        duration: Annotated[
            float | None,
            typer.Option(
                "--duration", help="Stop after this many seconds (default: until Ctrl-C)."
            ),
        ] = None,
        from_start: Annotated[
            bool,
            typer.Option("--from-start", help="Evaluate every stored event, not only new ones."),
        ] = False,
        fmt: FmtOpt = "text",
        home: HomeOpt = None,
    ) -> None:
        """Evaluate events as they are ingested and raise alerts within seconds."""
        from phiguard.detection.alerts import as_json
        from phiguard.detection.watch import Raised, percentile, run

        fmt = _fmt(fmt)
        phg = open_app(ctx, home)

        def show(r: Raised) -> None:
            doc = as_json(r.alert, phg.settings.timezone)
            if fmt == "json":
                sys.stdout.write(
                    __import__("json").dumps(
                        {**doc, "latency_s": round(r.latency_s, 3), "contained": r.contained},
                        ensure_ascii=False,
                    )
                    + "\n"
                )
                sys.stdout.flush()
                return
            _print_alerts([doc])
            if r.contained:
                out.print(f"    ⇒ contained: {r.contained}", markup=False)

        err.print("watching for new events (Ctrl-C to stop)…")
        try:
            w = run(phg, from_start=from_start, duration=duration, on_alert=show)
        except KeyboardInterrupt:
            return
        err.print(
            f"{w.events:,} events evaluated; alert latency p99 "
            f"{percentile(w.latencies, 0.99):.2f} s"
        )

    @alerts_app.command("list")
    def list_(
        ctx: typer.Context,
        status: Annotated[str, typer.Option(help="open, resolved or all.")] = "open",
        severity: Annotated[str | None, typer.Option(help="At least this severity.")] = None,
        account: Annotated[str | None, typer.Option(help="Only this account or vendor.")] = None,
        limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
        fmt: FmtOpt = "text",
        home: HomeOpt = None,
    ) -> None:
        """Stored alerts, most severe first."""
        from phiguard.detection import alerts

        fmt = _fmt(fmt)
        if status not in {"open", "resolved", "all"}:
            raise UsageError("--status must be open, resolved or all")
        phg = open_app(ctx, home)
        rows = [
            alerts.as_json(a, phg.settings.timezone)
            for a in alerts.list_alerts(
                phg, status=status, severity=severity, account_id=account, limit=limit
            )
        ]
        if fmt == "json":
            print_json(rows)
        else:
            _print_alerts(rows)

    @alerts_app.command("show")
    def show(
        ctx: typer.Context,
        alert_id: Annotated[str, typer.Argument(help="e.g. a-0001")],
        fmt: FmtOpt = "text",
        home: HomeOpt = None,
    ) -> None:
        """One alert with every reason, the rules behind it and its verdict."""
        from phiguard.audit.tags import Tag
        from phiguard.detection import alerts

        fmt = _fmt(fmt)
        phg = open_app(ctx, home)
        a = alerts.get(phg, alert_id)
        doc = alerts.as_json(a, phg.settings.timezone)
        phg.record(
            Tag.PATIENT_VIEWED,
            actor="cli",
            subject=alert_id,
            view="alert",
            patients=len(doc["patient_ids_sample"]),
        )
        if fmt == "json":
            print_json(
                {
                    **doc,
                    "origin": a.origin,
                    "contained": a.contained,
                    "resolved_by": a.resolved_by,
                    "note": a.note,
                    "hits": {
                        r: {k: v for k, v in h.items() if k != "sample"} for r, h in a.hits.items()
                    },
                }
            )
            return
        _print_alerts([doc])
        out.print(
            f"  rules: {', '.join(doc['rules'])}; raised by {a.origin}; "
            f"status {a.status}{' (' + a.verdict + ')' if a.verdict else ''}",
            markup=False,
        )
        out.print(
            f"  patients (sample): {', '.join(doc['patient_ids_sample']) or '-'}", markup=False
        )
        if a.contained:
            out.print(f"  contained: {a.contained}", markup=False)

    @alerts_app.command("resolve")
    def resolve(
        ctx: typer.Context,
        alert_id: Annotated[str, typer.Argument(help="e.g. a-0001")],
        verdict: Annotated[
            str, typer.Option("--verdict", help="true_positive, false_positive or benign.")
        ],
        note: Annotated[str | None, typer.Option("--note", help="Why.")] = None,
        by: Annotated[str, typer.Option("--by", help="Who decides (recorded).")] = "cli",
        home: HomeOpt = None,
    ) -> None:
        """Close an alert with a verdict. False positives and benign verdicts suppress the
        same rule on the same account for a while."""
        from phiguard.detection import alerts
        from phiguard.detection.settings import DetectionSettings

        phg = open_app(ctx, home)
        a = alerts.resolve(phg, alert_id, verdict, actor=by, note=note, p=DetectionSettings())
        out.print(f"{a.alert_id} resolved as {a.verdict}", markup=False)

    @alerts_app.command("stats")
    def stats(ctx: typer.Context, fmt: FmtOpt = "text", home: HomeOpt = None) -> None:
        """Accuracy from the verdicts: precision overall and per rule."""
        from phiguard.detection import alerts

        fmt = _fmt(fmt)
        doc = alerts.accuracy(open_app(ctx, home))
        if fmt == "json":
            print_json(doc)
            return
        prec = "n/a" if doc["precision"] is None else f"{doc['precision']:.0%}"
        out.print(
            f"{doc['alerts']} alerts, {doc['open']} open, {doc['resolved']} resolved: "
            f"{doc['true_positive']} true positive, {doc['false_positive']} false "
            f"positive, {doc['benign']} benign — precision {prec}",
            markup=False,
        )
        for rule, c in doc["by_rule"].items():
            p = "n/a" if c["precision"] is None else f"{c['precision']:.0%}"
            out.print(
                f"  {rule:<22} TP {c['true_positive']:>3}  FP {c['false_positive']:>3}  "
                f"benign {c['benign']:>3}  precision {p}",
                markup=False,
            )

    app.add_typer(alerts_app, name="alerts")
