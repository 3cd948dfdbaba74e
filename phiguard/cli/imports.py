"""``phiguard import {patients,accounts,vendors,grants,encounters} FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from phiguard.cli.common import FormatOpt, HomeOpt, err, interactive, open_app, out, print_json
from phiguard.storage.importer import KINDS, ImportReport, import_file

MAX_SHOWN = 20


def _print(report: ImportReport) -> None:
    verb = "imported" if report.committed else "NOT imported (--strict and bad rows)"
    out.print(
        f"{report.kind}: {report.rows_total:,} rows, {report.rows_ok:,} ok, {report.rows_bad:,} bad"
        f" — {report.inserted:,} new, {report.updated:,} updated, {report.unchanged:,} unchanged;"
        f" {verb}"
    )
    for e in report.errors[:MAX_SHOWN]:
        err.print(f"  line {e.line}: {e.reason}", markup=False)
    if report.rows_bad > MAX_SHOWN:
        err.print(f"  … {report.rows_bad - MAX_SHOWN:,} more bad rows; by reason:")
        for reason, count in report.reasons.most_common(10):
            err.print(f"    {count:,} × {reason}", markup=False)


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_(
        ctx: typer.Context,
        kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KINDS)}.")],
        file: Annotated[Path, typer.Argument(help="CSV, Parquet or NDJSON file.")],
        strict: Annotated[
            bool, typer.Option("--strict", help="Import nothing if any row is bad.")
        ] = False,
        fmt: FormatOpt = "text",
        home: HomeOpt = None,
    ) -> None:
        """Load reference data (spec §1.1-§1.5). Bad rows are reported with line numbers."""
        phg = open_app(ctx, home)
        if interactive() and fmt != "json":
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task(f"importing {kind}", total=file.stat().st_size or 1)
                report = import_file(
                    phg,
                    kind,
                    file,
                    strict=strict,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        else:
            report = import_file(phg, kind, file, strict=strict)
        if fmt == "json":
            print_json(report.as_dict())
        else:
            _print(report)
        if strict and report.rows_bad:
            raise typer.Exit(1)
