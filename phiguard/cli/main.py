"""Entry point: builds the Typer app, maps phiguard errors to exit codes in one place."""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

import phiguard.cli
from phiguard.cli.common import HomeOpt, err
from phiguard.errors import PhiguardError


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """Typer's own control-flow exceptions (it may vendor click), which must pass through."""
    found: list[type[BaseException]] = [typer.Exit, typer.Abort, KeyboardInterrupt]
    for module in ("typer._click.exceptions", "click.exceptions"):
        with contextlib.suppress(ImportError, AttributeError):
            found.append(importlib.import_module(module).ClickException)
    return tuple(found)


_PASSTHROUGH = _click_exceptions()


class PhiguardGroup(TyperGroup):
    """Turns a :class:`PhiguardError` anywhere below into one line on stderr and an exit code.

    Spec §2: 0 success, 1 ran but found a problem, 2 bad usage or unreadable input.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PhiguardError as exc:
            if os.environ.get("PHIGUARD_DEBUG"):
                raise
            err.print(f"phiguard: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except _PASSTHROUGH:
            raise
        except Exception as exc:
            # A bug, not bad input: still one line (no traceback full of paths and values),
            # with the way to get the details.
            if os.environ.get("PHIGUARD_DEBUG"):
                raise
            err.print(
                f"phiguard: internal error ({type(exc).__name__}: {exc}); "
                "rerun with PHIGUARD_DEBUG=1 for the traceback",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=PhiguardGroup,
    name="phiguard",
    help="Protect patient data from the people allowed near it: audit, access, detection, "
    "leaks, response.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(ctx: typer.Context, home: HomeOpt = None) -> None:
    ctx.obj = {"home": home}


def _register_all() -> None:
    for mod in sorted(pkgutil.iter_modules(phiguard.cli.__path__), key=lambda m: m.name):
        if mod.name in {"main", "common"} or mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"phiguard.cli.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def run() -> None:
    app()


__all__ = ["Path", "app", "run"]
