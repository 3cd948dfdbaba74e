"""The audit log in the console: checkpoint, verification, completeness per source, evidence
bundle export (re-authentication required) and download."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from phiguard.audit import completeness
from phiguard.audit import evidence as evidence_svc
from phiguard.audit.tags import Tag
from phiguard.audit.verify import verify_log
from phiguard.clock import parse_ts
from phiguard.errors import NotFound, UsageError
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import ConsoleDep, Page, Principal

router = APIRouter(include_in_schema=False)
Reader = Annotated[Principal, Depends(Page(Perm.AUDIT_READ))]
Exporter = Annotated[Principal, Depends(Page(Perm.AUDIT_EXPORT, recent=True))]
_BUNDLE = re.compile(r"evidence-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}\.zip")


def overview(app: Any) -> dict[str, Any]:
    note = app.audit.latest_checkpoint()
    return {
        "size": app.audit.size,
        "checkpoint": note.decode() if note else None,
        "vkey": app.audit.config.get("vkey"),
        "sources": [s.as_dict() for s in completeness.status(app)],
        "anomalies": [
            a.as_dict() | {"text": a.describe()}
            for a in completeness.anomalies(app, open_only=True, limit=50)
        ],
    }


def bundles(app: Any) -> list[dict[str, Any]]:
    folder = app.home.exports
    return sorted(
        (
            {"name": p.name, "bytes": p.stat().st_size}
            for p in folder.glob("evidence-*.zip")
            if _BUNDLE.fullmatch(p.name)
        ),
        key=lambda b: b["name"],
        reverse=True,
    )


def export_bundle(app: Any, *, actor: str, account: str, since: str, until: str) -> str:
    try:
        t0 = parse_ts(since) if since.strip() else None
        t1 = parse_ts(until) if until.strip() else None
    except ValueError as exc:
        raise UsageError(f"not an ISO-8601 time: {exc}") from None
    indices = evidence_svc.select_events(app, account=account.strip() or None, since=t0, until=t1)
    stamp = app.clock.now().strftime("%Y%m%dT%H%M%S")
    import secrets

    name = f"evidence-{stamp}-{secrets.token_hex(3)}.zip"
    selection = {
        "account_id": account.strip() or None,
        "since": t0.isoformat() if t0 else None,
        "until": t1.isoformat() if t1 else None,
    }
    evidence_svc.export(app, app.home.exports / name, indices=indices, selection=selection)
    app.record(
        Tag.EVIDENCE_EXPORTED,
        actor=actor,
        subject=f"account:{account}" if account.strip() else "",
        entries=len(indices),
        file=name,
        channel="console",
    )
    return name


def bundle_path(app: Any, name: str) -> Any:
    if not _BUNDLE.fullmatch(name):
        raise NotFound("no such bundle")
    path = app.home.exports / name
    if not path.is_file():
        raise NotFound("no such bundle")
    return path


@router.get("/audit")
def audit(request: Request, console: ConsoleDep, user: Reader) -> Response:
    return request.app.state.renderer.page(
        request,
        "audit.html",
        o=overview(console.app),
        bundles=bundles(console.app),
        can_export=user.can(Perm.AUDIT_EXPORT),
        report=None,
    )


@router.get("/audit/verify")
def verify(request: Request, console: ConsoleDep, user: Reader) -> Response:
    started = datetime.now()
    report = verify_log(console.app.audit).to_json()
    report["seconds"] = round((datetime.now() - started).total_seconds(), 2)
    return request.app.state.renderer.page(
        request,
        "audit.html",
        o=overview(console.app),
        bundles=bundles(console.app),
        can_export=user.can(Perm.AUDIT_EXPORT),
        report=report,
    )


@router.post("/audit/evidence")
def export(
    console: ConsoleDep,
    user: Exporter,
    account: Annotated[str, Form(max_length=64)] = "",
    since: Annotated[str, Form(max_length=40)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    export_bundle(console.app, actor=user.actor, account=account, since=since, until=until)
    return RedirectResponse("/audit?msg=exported", status_code=303)


@router.get("/audit/evidence/{name}")
def download(
    console: ConsoleDep, user: Annotated[Principal, Depends(Page(Perm.AUDIT_EXPORT))], name: str
) -> Response:
    path = bundle_path(console.app, name)
    console.app.record(Tag.LOG_EXPORTED, actor=user.actor, subject=name, channel="console")
    return FileResponse(path, media_type="application/zip", filename=name)
