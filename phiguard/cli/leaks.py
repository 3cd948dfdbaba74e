"""``phiguard leaks scan FILE... [--format json]`` and the canary registry.

Thin: arguments in, :mod:`phiguard.leaks.scan` / :mod:`phiguard.leaks.canaries` do the work.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from phiguard.cli.common import FormatOpt, HomeOpt, err, interactive, open_app, out, print_json
from phiguard.clock import parse_ts
from phiguard.errors import UsageError


def _actor(value: str | None) -> str:
    chosen = (value or os.environ.get("PHIGUARD_ACTOR") or "").strip()
    if chosen:
        return chosen
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in some containers
        return "operator"


def _ts(text: str | None, what: str):
    if not text:
        return None
    try:
        return parse_ts(text)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not an ISO-8601 time") from None


def register(app: typer.Typer) -> None:
    leaks = typer.Typer(
        help="Scan leaked files, link them to patients, name the source.", no_args_is_help=True
    )
    canaries = typer.Typer(
        help="Canary (honey) patients planted per vendor and per export.", no_args_is_help=True
    )
    leaks.add_typer(canaries, name="canaries")
    app.add_typer(leaks, name="leaks")

    @leaks.command("scan")
    def scan_cmd(
        ctx: typer.Context,
        files: Annotated[
            list[Path],
            typer.Argument(help="Leaked files: CSV, XLSX, JSON, PDF, HTML, text, ZIP, gzip …"),
        ],
        fmt: FormatOpt = "text",
        since: Annotated[
            str | None, typer.Option(help="Attribution: events from this time.")
        ] = None,
        until: Annotated[
            str | None, typer.Option(help="Attribution: events up to this time.")
        ] = None,
        no_fuzzy: Annotated[
            bool, typer.Option("--no-fuzzy", help="Exact identifiers only.")
        ] = False,
        as_: Annotated[
            str | None, typer.Option("--as", help="Who is scanning (for the log).")
        ] = None,
        engine: Annotated[
            str | None,
            typer.Option(
                help="Fuzzy linkage on 'duckdb' or 'spark' (default: the engine setting)."
            ),
        ] = None,
        home: HomeOpt = None,
    ) -> None:
        """Read the files, link every leaked record to the PMI and rank the likely source."""
        if engine not in (None, "duckdb", "spark"):
            raise typer.BadParameter("expected duckdb or spark", param_hint="--engine")
        from phiguard.leaks.scan import iter_summary, scan

        phg = open_app(ctx, home)
        kw = dict(
            actor=_actor(as_),
            fuzzy=not no_fuzzy,
            since=_ts(since, "--since"),
            until=_ts(until, "--until"),
            engine=engine,
        )
        if interactive() and fmt != "json":
            total = sum(f.stat().st_size for f in files if f.is_file()) or 1
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("scanning", total=total)
                result = scan(
                    phg, files, progress=lambda d, t: bar.update(task, completed=d, total=t), **kw
                )
        else:
            result = scan(phg, files, **kw)
        if fmt == "json":
            print_json(result)
        else:
            for line in iter_summary(result):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
        for f in result["files"]:
            for problem in f.get("not_read", []):
                err.print(f"phiguard: {f['path']}: {problem}", markup=False, soft_wrap=True)

    @leaks.command("index")
    def index(ctx: typer.Context, home: HomeOpt = None) -> None:
        """Key every patient's surname and date of birth for fuzzy linkage now (a scan does it
        when needed; after a large PMI import, doing it ahead saves the first scan that time)."""
        from phiguard.leaks.linkindex import refresh

        n = refresh(open_app(ctx, home))
        out.print(f"keyed {n:,} new or changed patients for linkage", markup=False)

    @leaks.command("show")
    def show(
        ctx: typer.Context, scan_id: str, fmt: FormatOpt = "text", home: HomeOpt = None
    ) -> None:
        """A recorded scan: who ran it, on which files, the digest of its result."""
        from phiguard.leaks.scan import get_scan

        rec = get_scan(open_app(ctx, home), scan_id)
        if fmt == "json":
            print_json(rec)
            return
        out.print(f"{rec['scan_id']} by {rec['actor']} at {rec['finished']}", markup=False)
        for f in rec["files"]:
            out.print(
                f"  {f['path']} ({f['format']}, {f['records']:,} records) sha256 "
                f"{f.get('sha256') or '-'}",
                markup=False,
            )
        out.print(
            f"affected {rec['affected_count']:,}; fields {', '.join(rec['fields_exposed'])}; "
            f"result sha256 {rec['result_sha256']}",
            markup=False,
        )

    @leaks.command("list")
    def list_cmd(ctx: typer.Context, fmt: FormatOpt = "text", home: HomeOpt = None) -> None:
        """Recorded scans, newest first."""
        from phiguard.leaks.scan import list_scans

        rows = list_scans(open_app(ctx, home))
        if fmt == "json":
            print_json(rows)
            return
        for r in rows:
            out.print(
                f"{r['scan_id']}  {r['finished']}  {r['affected_count']:>8,} affected  "
                f"{r['actor']}",
                markup=False,
            )

    @canaries.command("plant")
    def plant(
        ctx: typer.Context,
        vendor: Annotated[str | None, typer.Option(help="The vendor that receives them.")] = None,
        account: Annotated[str | None, typer.Option(help="The account that receives them.")] = None,
        export: Annotated[
            str | None, typer.Option(help="The bulk export (query id) they go into.")
        ] = None,
        count: Annotated[int, typer.Option(help="How many canaries (1-100).")] = 1,
        label: Annotated[str, typer.Option(help="A note for investigators.")] = "",
        cluster: Annotated[str, typer.Option(help="Cluster the canaries appear in.")] = "KEC",
        fmt: FormatOpt = "text",
        as_: Annotated[
            str | None, typer.Option("--as", help="Who plants them (for the log).")
        ] = None,
        home: HomeOpt = None,
    ) -> None:
        """Create fictitious patients for one recipient; their presence in a dump names it."""
        from phiguard.leaks.canaries import plant as do_plant

        planted = do_plant(
            open_app(ctx, home),
            actor=_actor(as_),
            vendor_id=vendor,
            account_id=account,
            query_id=export,
            count=count,
            label=label,
            cluster=cluster,
        )
        if fmt == "json":
            print_json([p.__dict__ for p in planted])
            return
        for p in planted:
            out.print(f"planted canary {p.patient_id}", markup=False)

    @canaries.command("list")
    def list_canaries(ctx: typer.Context, fmt: FormatOpt = "text", home: HomeOpt = None) -> None:
        """The canary registry: which fictitious patient went to whom."""
        from phiguard.leaks.canaries import registry

        rows = registry(open_app(ctx, home))
        if fmt == "json":
            print_json(rows)
            return
        for r in rows:
            whom = r["vendor_id"] or r["account_id"] or r["query_id"]
            out.print(
                f"{r['patient_id']}  -> {whom}  ({r['planted_at']}) {r['label']}", markup=False
            )
