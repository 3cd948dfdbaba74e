"""``phiguard init``."""

from __future__ import annotations

import typer

from phiguard.app import App
from phiguard.cli.common import HomeOpt, out, settings_for


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(ctx: typer.Context, home: HomeOpt = None) -> None:
        """Create a new home: databases, keys (0600), an empty audit log."""
        settings = settings_for(ctx, home)
        phg = App.init(settings)
        try:
            out.print(f"initialised phiguard home at {settings.home}")
        finally:
            phg.close()
