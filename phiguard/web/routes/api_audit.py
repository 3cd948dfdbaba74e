"""``/v1`` audit log: live ingestion of access events, log state, verification, evidence."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from phiguard.audit.ingest import ingest_body
from phiguard.audit.tags import Tag
from phiguard.audit.verify import verify_log
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import Api, ConsoleDep, Principal
from phiguard.web.routes import audit as audit_pages
from phiguard.web.routes import client_ip
from phiguard.web.routes.api_core import AUTHED, E400, E404, E422

router = APIRouter(prefix="/v1")

_EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "description": "Access events (spec §1.6) as NDJSON rows, FHIR R4 AuditEvent NDJSON, "
        "a FHIR Bundle of AuditEvents, or CSV with a header row.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/fhir+json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


class EvidenceIn(BaseModel):
    account: str = Field("", max_length=64)
    since: str = Field("", max_length=40)
    until: str = Field("", max_length=40)


class EvidenceOut(BaseModel):
    name: str
    url: str


@router.post(
    "/events",
    responses={
        **AUTHED,
        **E400,
        **E422,
        413: {"description": "Body too large"},
        415: {"description": "Unsupported content type"},
    },
    openapi_extra=_EVENTS_BODY,
    tags=["audit"],
)
async def post_events(
    request: Request,
    console: ConsoleDep,
    client: Annotated[Principal, Depends(Api(Perm.EVENTS_WRITE))],
) -> dict[str, Any]:
    """Append access events to the tamper-evident log and the event store. Answers only
    once the accepted events are durable; rejected rows are listed with their line."""
    from starlette.concurrency import run_in_threadpool

    body = await request.body()
    ctype = request.headers.get("content-type", "")
    result = await run_in_threadpool(
        ingest_body, console.app, body, ctype, actor=client.actor, peer=client_ip(request)
    )
    return result.as_dict()


@router.get("/audit", responses=AUTHED, tags=["audit"])
def audit_state(
    console: ConsoleDep, _: Annotated[Principal, Depends(Api(Perm.AUDIT_READ))]
) -> dict[str, Any]:
    """Log size, latest signed checkpoint, completeness per source, open problems."""
    return audit_pages.overview(console.app)


@router.get("/audit/verification", responses=AUTHED, tags=["audit"])
def verification(
    console: ConsoleDep, _: Annotated[Principal, Depends(Api(Perm.AUDIT_READ))]
) -> dict[str, Any]:
    """Re-check every entry and checkpoint now."""
    return verify_log(console.app.audit).to_json()


@router.post(
    "/audit/evidence",
    response_model=EvidenceOut,
    status_code=201,
    responses={**AUTHED, **E400},
    tags=["audit"],
)
def export_evidence(
    console: ConsoleDep,
    body: EvidenceIn,
    user: Annotated[Principal, Depends(Api(Perm.AUDIT_EXPORT, recent=True))],
) -> EvidenceOut:
    name = audit_pages.export_bundle(
        console.app, actor=user.actor, account=body.account, since=body.since, until=body.until
    )
    return EvidenceOut(name=name, url=f"/v1/audit/evidence/{name}")


@router.get(
    "/audit/evidence/{name}",
    responses={**AUTHED, **E404, 200: {"content": {"application/zip": {}}}},
    tags=["audit"],
    response_class=Response,
)
def download_evidence(
    console: ConsoleDep, name: str, user: Annotated[Principal, Depends(Api(Perm.AUDIT_EXPORT))]
) -> Response:
    path = audit_pages.bundle_path(console.app, name)
    console.app.record(Tag.LOG_EXPORTED, actor=user.actor, subject=name, channel="api")
    return FileResponse(path, media_type="application/zip", filename=name)
