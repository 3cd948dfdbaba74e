"""Options and helpers shared by the access command groups (grants, vendors, access)."""

from __future__ import annotations

import getpass
import os
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from phiguard.app import App
from phiguard.cli.common import open_app
from phiguard.clock import FixedClock, parse_ts
from phiguard.errors import UsageError

AtOpt = Annotated[
    str | None,
    typer.Option("--at", help="Act as if it were this time (ISO-8601; default: now)."),
]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", help="Account acting (an approver or reviewer id; default $PHIGUARD_ACTOR)."
    ),
]
Fmt = Annotated[str, typer.Option("--format", help="Output format: text or json.")]


def open_at(ctx: typer.Context, home: Path | None, at: str | None) -> App:
    app = open_app(ctx, home)
    if at:
        app.clock = FixedClock(when(at))
    return app


def when(text: str) -> datetime:
    try:
        return parse_ts(text)
    except ValueError:
        raise UsageError(f"--at {text!r} is not an ISO-8601 time") from None


def actor(value: str | None, *, required: bool = True) -> str:
    chosen = (value or os.environ.get("PHIGUARD_ACTOR") or "").strip()
    if chosen:
        return chosen
    if required:
        raise UsageError("say who is acting with --as ACCOUNT (or $PHIGUARD_ACTOR)")
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in some containers
        return "operator"


def day(text: str | None, what: str) -> date | None:
    if text is None or not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a YYYY-MM-DD date") from None
