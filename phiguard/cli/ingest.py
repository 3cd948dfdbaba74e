"""``phiguard ingest FILE...``: append access events to the audit log and the event store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from phiguard.cli.common import FormatOpt, HomeOpt, err, interactive, open_app, out, print_json

MAX_SHOWN = 20


def _print(result: object) -> None:
    from phiguard.audit.ingest import IngestResult

    assert isinstance(result, IngestResult)
    for f in result.files:
        if f.committed:
            if f.batches:
                first = f.batches[0][0]
                last = f.batches[-1][0] + f.batches[-1][1]
                where = f"sealed in {len(f.batches)} batch(es), log entries {first:,}–{last:,}"
            else:
                where = "nothing new to seal"
            if f.already:
                where += f"; {f.already:,} event(s) were already ingested from this file"
            verdict = where
        else:
            verdict = "NOT ingested (--strict and bad rows): nothing was written"
        out.print(
            f"{f.name}: {f.records:,} records, {f.accepted:,} accepted, "
            f"{f.rejected:,} rejected — {verdict}",
            markup=False,
            soft_wrap=True,
        )
        for e in f.errors[:MAX_SHOWN]:
            err.print(f"  {f.name} line {e.line}: {e.reason}", markup=False, soft_wrap=True)
        if f.rejected > MAX_SHOWN:
            err.print(f"  … {f.rejected - MAX_SHOWN:,} more rejected rows; by reason:")
            for reason, count in f.reasons.most_common(10):
                err.print(f"    {count:,} × {reason}", markup=False, soft_wrap=True)
    if result.anomalies:
        out.print(f"completeness: {len(result.anomalies)} new alert(s)")
        for a in result.anomalies[:MAX_SHOWN]:
            out.print(f"  {a.describe()}", markup=False, soft_wrap=True)
    else:
        out.print("completeness: no gaps, duplicates or regressions")


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        ctx: typer.Context,
        files: Annotated[
            list[Path],
            typer.Argument(
                help="CSV, Parquet, NDJSON, FHIR AuditEvent NDJSON or a FHIR Bundle (.json); "
                ".gz accepted for the text formats."
            ),
        ],
        strict: Annotated[
            bool,
            typer.Option("--strict", help="Ingest nothing from a file with any bad row (exit 1)."),
        ] = False,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help="Seal again what an earlier run already ingested from the same "
                "file (it will be flagged as duplicates).",
            ),
        ] = False,
        fmt: FormatOpt = "text",
        home: HomeOpt = None,
    ) -> None:
        """Append access events (spec §1.6) to the tamper-evident log and the event store.

        Bad rows are reported with their line numbers and left out; the rest is sealed.
        Sequence gaps, duplicates and regressions per source are reported as alerts.
        """
        from phiguard.audit.ingest import ingest_files

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
                task = bar.add_task("ingesting", total=1)
                result = ingest_files(
                    phg,
                    files,
                    strict=strict,
                    force=force,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        else:
            result = ingest_files(phg, files, strict=strict, force=force)
        if fmt == "json":
            print_json(result.as_dict())
        else:
            _print(result)
        if strict and result.rejected:
            raise typer.Exit(1)
