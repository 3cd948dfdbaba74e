"""What every command shares: the ``--home`` option, opening the app, output helpers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from phiguard.app import App
from phiguard.settings import Settings

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="The phiguard home (default: $PHIGUARD_HOME or ./phiguard-data)."),
]
FormatOpt = Annotated[str, typer.Option("--format", help="Output format: text or json.")]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def settings_for(ctx: typer.Context, home: Path | None) -> Settings:
    """Resolve the home: the command's --home, then the global --home, then the environment."""
    chosen = home or (ctx.find_root().obj or {}).get("home")
    settings = Settings()
    if chosen is not None:
        settings = settings.model_copy(update={"home": Path(chosen)})
    return settings


def open_app(ctx: typer.Context, home: Path | None) -> App:
    app = App.open(settings_for(ctx, home))
    ctx.call_on_close(app.close)
    return app


def interactive() -> bool:
    """True when a person is watching: progress bars on, JSON not forced."""
    return sys.stderr.isatty() and os.environ.get("CI") is None


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=1, default=str) + "\n")
