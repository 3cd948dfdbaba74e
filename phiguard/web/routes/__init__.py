"""Route modules. Pages (HTML, excluded from the OpenAPI document) and the ``/v1`` API are
thin: they parse, check through :mod:`phiguard.web.deps`, call a service, render."""

from __future__ import annotations

from fastapi import Request


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:200]
