"""``phiguard demo`` (the end-to-end story) and ``phiguard demo generate`` (the hospital)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn

from phiguard.cli.common import HomeOpt, err, interactive, out, settings_for
from phiguard.errors import UsageError

if TYPE_CHECKING:
    from phiguard.demo.generator import GenerationSummary

demo_app = typer.Typer(
    help="Build a synthetic hospital and replay the April 2026 contractor leak end to end.",
    invoke_without_command=True,
)


@demo_app.callback()
def demo(
    ctx: typer.Context,
    home: HomeOpt = None,
    patients: Annotated[int, typer.Option(help="Patients in the synthetic hospital.")] = 20_000,
    days: Annotated[int, typer.Option(help="Days of access events.")] = 7,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same hospital).")] = 2026,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete an earlier demo home at the same place first.")
    ] = False,
    no_serve: Annotated[
        bool,
        typer.Option("--no-serve", help="Stop after the story instead of starting the console."),
    ] = False,
) -> None:
    """Generate a small hospital, initialise a home, import it and tell the story."""
    if ctx.invoked_subcommand is not None:
        return
    from phiguard.app import App
    from phiguard.demo.story import Story, tell

    settings = settings_for(ctx, home)
    root = settings.home
    data = root.with_name(root.name + "-input")
    if root.exists() and any(root.iterdir()):
        marker = root / "phiguard.json"
        if not fresh:
            raise UsageError(
                f"{root} exists; use --fresh to replace the demo home or choose --home"
            )
        if not marker.exists():
            raise UsageError(f"{root} is not a phiguard home; refusing to delete it")
        shutil.rmtree(root)
    if data.exists():
        shutil.rmtree(data)
    out.rule("[bold]phiguard demo — the April 2026 contractor leak, replayed")
    summary = _generate(data, patients=patients, days=days, seed=seed)
    labels = json.loads(Path(summary.labels).read_text())
    phg = App.init(settings)
    try:
        serve = not no_serve and sys.stdout.isatty() and interactive()
        tell(Story(app=phg, out=out, data=data, labels=labels, serve=serve))
    finally:
        phg.close()


def _generate(data: Path, **kw: Any) -> GenerationSummary:
    """Run the generator; on a terminal, with one progress bar per stage."""
    from phiguard.demo.generator import generate

    if not interactive():
        return generate(data, **kw)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"generating {stage}", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return generate(data, progress=progress, **kw)


@demo_app.command("generate")
def generate_cmd(
    out_dir: Annotated[
        Path, typer.Argument(metavar="OUT", help="Folder to write the hospital into.")
    ],
    patients: Annotated[int, typer.Option(help="Number of patients.")] = 20_000,
    days: Annotated[int, typer.Option(help="Days of access events.")] = 7,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    fmt: Annotated[str, typer.Option("--format", help="Reference files: csv or parquet.")] = "csv",
    scenarios: Annotated[
        bool, typer.Option("--scenarios/--no-scenarios", help="Plant labelled scenarios.")
    ] = True,
    events: Annotated[
        int | None, typer.Option(help="Total access events (default: a realistic volume).")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="First day, YYYY-MM-DD (default: ends 2026-04-03).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing OUT folder.")
    ] = False,
) -> None:
    """Write a synthetic Hong Kong public hospital in the spec's formats (plus labels.json)."""
    from datetime import date

    if fmt not in {"csv", "parquet"}:
        raise UsageError("--format must be csv or parquet")
    if patients < 100 or days < 1:
        raise UsageError("need at least 100 patients and 1 day")
    try:
        first = date.fromisoformat(start) if start else None
    except ValueError:
        raise UsageError("--start must be a YYYY-MM-DD date") from None
    summary = _generate(
        out_dir,
        patients=patients,
        days=days,
        seed=seed,
        fmt=fmt,
        scenarios=scenarios,
        events=events,
        start=first,
        overwrite=overwrite,
    )
    out.print(f"wrote a synthetic hospital to {out_dir}")
    for name, count in summary.counts.items():
        out.print(f"  {name:<16} {count:>12,}")


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
