"""Jinja2 rendering with autoescaping, the navigation a role may see, and safe messages.

Messages after a redirect are chosen from a fixed table by key (``?msg=revoked``), never
echoed from the URL, so a crafted link cannot make the console say something it did not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from phiguard.clock import HKT
from phiguard.web.auth.roles import Perm

NAV: list[tuple[str, str, Perm | None]] = [
    ("/", "Dashboard", Perm.DASHBOARD),
    ("/alerts", "Alerts", Perm.ALERTS_READ),
    ("/incidents", "Incidents", Perm.INCIDENTS_READ),
    ("/scans", "Leak scans", Perm.LEAKS_READ),
    ("/vendors", "Vendors", Perm.VENDORS_READ),
    ("/grants", "Grants", Perm.VENDORS_READ),
    ("/patients", "Patients", Perm.PATIENTS_READ),
    ("/audit", "Audit log", Perm.AUDIT_READ),
    ("/admin/users", "Users", Perm.USERS_ADMIN),
    ("/admin/tokens", "API tokens", Perm.TOKENS_ADMIN),
]

MESSAGES = {
    "logged-out": "You are logged out.",
    "expired": "Your session ended. Please log in again.",
    "password-changed": "Password changed. Other sessions were ended.",
    "session-revoked": "Session ended.",
    "sessions-revoked": "All your other sessions were ended.",
    "user-created": "User created.",
    "user-updated": "User updated.",
    "token-revoked": "Token revoked.",
    "key-added": "Security key registered.",
    "key-removed": "Security key removed.",
    "saved": "Saved.",
    "verdict": "Verdict recorded.",
    "approved": "Approval recorded.",
    "requested": "Request recorded.",
    "revoked": "Revoked.",
    "suspended": "Vendor suspended: its grants are revoked and its accounts disabled.",
    "resumed": "Vendor resumed. No grant was restored.",
    "opened": "Incident opened.",
    "contained": "Containment recorded.",
    "notified": "Notices queued.",
    "exported": "Evidence bundle written.",
}


def fmt_ts(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        return value.strftime(fmt)
    return value.astimezone(HKT).strftime(fmt)


def fmt_int(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


class Renderer:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("phiguard.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # templates ship with the package: no stat() per render
        )
        self.env.filters["ts"] = fmt_ts
        self.env.filters["int"] = fmt_int

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        principal = getattr(request.state, "principal", None)
        session = getattr(principal, "session", None) if principal else None
        nav = []
        if principal is not None and principal.kind == "user":
            nav = [
                (href, label) for href, label, perm in NAV if perm is None or principal.can(perm)
            ]
        msg_key = request.query_params.get("msg", "")
        html = self.env.get_template(name).render(
            request=request,
            user=principal,
            nav=nav,
            path=request.url.path,
            csrf_token=session.csrf_token if session else context.pop("csrf_token", ""),
            message=MESSAGES.get(msg_key, ""),
            **context,
        )
        return HTMLResponse(html, status_code=status)
