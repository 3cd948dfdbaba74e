"""Incidents: list, open (from an alert, a scan or by hand), the case page (timeline, tasks,
ENISA score, clocks, notification progress, reports), and the actions on it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from phiguard.incidents import cases, containment
from phiguard.incidents.clocks import RECIPIENTS
from phiguard.incidents.reports import KINDS
from phiguard.incidents.risk import FACTORS
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import Api, ConsoleDep, Page, Principal
from phiguard.web.readmodels import incident_ops as ops
from phiguard.web.routes.api_core import AUTHED, E400, E404, E409

router = APIRouter()
Reader = Annotated[Principal, Depends(Page(Perm.INCIDENTS_READ))]
Writer = Annotated[Principal, Depends(Page(Perm.INCIDENTS_WRITE))]
Container = Annotated[Principal, Depends(Page(Perm.INCIDENTS_WRITE, recent=True))]


def _back(incident_id: str, msg: str = "saved") -> Response:
    return RedirectResponse(f"/incidents/{incident_id}?msg={msg}", status_code=303)


@router.get("/incidents", include_in_schema=False)
def incidents(request: Request, console: ConsoleDep, user: Reader) -> Response:
    return request.app.state.renderer.page(
        request,
        "incidents.html",
        incidents=cases.list_incidents(console.app),
        can_write=user.can(Perm.INCIDENTS_WRITE),
    )


@router.post("/incidents", include_in_schema=False)
def open_(
    console: ConsoleDep,
    user: Writer,
    alert_id: Annotated[str, Form(max_length=64)] = "",
    scan_id: Annotated[str, Form(max_length=64)] = "",
    title: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    iid = ops.open_incident(
        console.app, actor=user.actor, alert_id=alert_id, scan_id=scan_id, title=title
    )
    return _back(iid, "opened")


@router.get("/incidents/{incident_id}", include_in_schema=False)
def incident(request: Request, console: ConsoleDep, user: Reader, incident_id: str) -> Response:
    return request.app.state.renderer.page(
        request,
        "incident.html",
        i=ops.case_view(console.app, incident_id),
        can_write=user.can(Perm.INCIDENTS_WRITE),
        recipients=RECIPIENTS,
        kinds=KINDS,
        factors=FACTORS,
    )


@router.post("/incidents/{incident_id}/notes", include_in_schema=False)
def note(
    console: ConsoleDep, user: Writer, incident_id: str, text: Annotated[str, Form(max_length=5000)]
) -> Response:
    cases.add_note(console.app, incident_id, text, actor=user.actor)
    return _back(incident_id)


@router.post("/incidents/{incident_id}/tasks/{key}/done", include_in_schema=False)
def task_done(console: ConsoleDep, user: Writer, incident_id: str, key: str) -> Response:
    cases.complete_task(console.app, incident_id, key, actor=user.actor)
    return _back(incident_id)


@router.post("/incidents/{incident_id}/assess", include_in_schema=False)
def assess(
    console: ConsoleDep,
    user: Writer,
    incident_id: str,
    factor: Annotated[str, Form(max_length=32)],
    value: Annotated[float, Form()],
    rationale: Annotated[str, Form(max_length=1000)],
) -> Response:
    cases.assess(console.app, incident_id, factor, value, rationale, actor=user.actor)
    return _back(incident_id)


@router.post("/incidents/{incident_id}/contain", include_in_schema=False)
def contain(
    console: ConsoleDep,
    user: Container,
    incident_id: str,
    vendor_id: Annotated[str, Form(max_length=64)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if not user.can(Perm.VENDORS_SUSPEND):
        from phiguard.errors import PermissionDenied

        raise PermissionDenied("your role may not suspend vendors")
    containment.suspend_vendor(console.app, incident_id, vendor_id, actor=user.actor, reason=reason)
    return _back(incident_id, "contained")


@router.post("/incidents/{incident_id}/notified", include_in_schema=False)
def notified(
    console: ConsoleDep,
    user: Writer,
    incident_id: str,
    recipient: Annotated[str, Form(max_length=16)],
    reference: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    cases.mark_notified(console.app, incident_id, recipient, actor=user.actor, reference=reference)
    return _back(incident_id)


@router.post("/incidents/{incident_id}/notify", include_in_schema=False)
def notify_patients(
    console: ConsoleDep,
    user: Writer,
    incident_id: str,
    channels: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
) -> Response:
    ops.start_notices(console.app, incident_id, channels, actor=user.actor)
    return _back(incident_id, "notified")


@router.post("/incidents/{incident_id}/reports", include_in_schema=False)
def report(
    console: ConsoleDep, user: Writer, incident_id: str, kind: Annotated[str, Form(max_length=16)]
) -> Response:
    ops.write_report(console.app, incident_id, kind, actor=user.actor)
    return _back(incident_id)


@router.get("/incidents/{incident_id}/reports/{name}", include_in_schema=False)
def report_file(console: ConsoleDep, _: Reader, incident_id: str, name: str) -> Response:
    return FileResponse(
        ops.report_path(console.app, incident_id, name), media_type="application/pdf", filename=name
    )


class OpenIn(BaseModel):
    alert_id: str = Field("", max_length=64)
    scan_id: str = Field("", max_length=64)
    title: str = Field("", max_length=300)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=5000)


@router.get("/v1/incidents", responses=AUTHED, tags=["incidents"])
def api_list(
    console: ConsoleDep, _: Annotated[Principal, Depends(Api(Perm.INCIDENTS_READ))]
) -> list[dict[str, Any]]:
    return cases.list_incidents(console.app)


@router.post(
    "/v1/incidents", status_code=201, responses={**AUTHED, **E400, **E404}, tags=["incidents"]
)
def api_open(
    console: ConsoleDep,
    body: OpenIn,
    user: Annotated[Principal, Depends(Api(Perm.INCIDENTS_WRITE))],
) -> dict[str, Any]:
    iid = ops.open_incident(
        console.app,
        actor=user.actor,
        alert_id=body.alert_id,
        scan_id=body.scan_id,
        title=body.title,
    )
    return cases.summary(console.app, iid)


@router.get("/v1/incidents/{incident_id}", responses={**AUTHED, **E404}, tags=["incidents"])
def api_get(
    console: ConsoleDep,
    incident_id: str,
    _: Annotated[Principal, Depends(Api(Perm.INCIDENTS_READ))],
) -> dict[str, Any]:
    """The case: summary (ENISA, clocks, tasks), timeline, notification progress, reports."""
    return ops.case_view(console.app, incident_id)


@router.post(
    "/v1/incidents/{incident_id}/notes",
    status_code=201,
    responses={**AUTHED, **E400, **E404},
    tags=["incidents"],
)
def api_note(
    console: ConsoleDep,
    incident_id: str,
    body: NoteIn,
    user: Annotated[Principal, Depends(Api(Perm.INCIDENTS_WRITE))],
) -> dict[str, Any]:
    cases.add_note(console.app, incident_id, body.text, actor=user.actor)
    return {"incident_id": incident_id, "ok": True}


@router.post(
    "/v1/incidents/{incident_id}/close", responses={**AUTHED, **E404, **E409}, tags=["incidents"]
)
def api_close(
    console: ConsoleDep,
    incident_id: str,
    user: Annotated[Principal, Depends(Api(Perm.INCIDENTS_WRITE))],
) -> dict[str, Any]:
    cases.close(console.app, incident_id, actor=user.actor)
    return {"incident_id": incident_id, "status": "closed"}
