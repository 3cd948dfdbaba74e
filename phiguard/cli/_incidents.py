"""What the ``phiguard incidents`` command modules share: the group, options, helpers."""

from __future__ import annotations

import getpass
import os
from typing import Annotated, Any

import typer

from phiguard.clock import parse_ts
from phiguard.errors import UsageError

incidents_app = typer.Typer(
    help="Breach incidents: open, contain, assess, clocks, reports, patient notices.",
    no_args_is_help=True,
)
IdArg = Annotated[str, typer.Argument(help="Incident id, e.g. INC-2026-0001.")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Who is acting (default $PHIGUARD_ACTOR or the login name)."),
]


def actor(value: str | None) -> str:
    chosen = (value or os.environ.get("PHIGUARD_ACTOR") or "").strip()
    if chosen:
        return chosen
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):
        return "operator"


def ts(text: str | None, what: str) -> Any:
    if not text:
        return None
    try:
        return parse_ts(text)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not an ISO-8601 time") from None


def check_format(fmt: str) -> None:
    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")
