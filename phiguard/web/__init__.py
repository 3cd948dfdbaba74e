"""The web console and REST API: ``create_app(app)`` builds a FastAPI application from one
:class:`~phiguard.app.App`. Importing this package does not import FastAPI (the CLI's user
and token commands use :mod:`phiguard.web.auth` without it)."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from phiguard.web.app import create_app

        return create_app
    raise AttributeError(name)
