"""Patient access history (accounting of disclosures): console page and the API for the
patients' app. Every view is written to the audit log by the read model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from phiguard.errors import PhiguardError
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import Api, ConsoleDep, Page, Principal
from phiguard.web.readmodels import patients as patients_rm
from phiguard.web.readmodels.history import patient_history
from phiguard.web.routes.api_core import AUTHED, E404

router = APIRouter()
Reader = Annotated[Principal, Depends(Page(Perm.PATIENTS_READ))]
Revealer = Annotated[Principal, Depends(Page(Perm.REVEAL, recent=True))]


@router.get("/patients", include_in_schema=False)
def search(request: Request, console: ConsoleDep, _: Reader, q: str = "") -> Response:
    error = ""
    if q.strip():
        try:
            return RedirectResponse(
                f"/patients/{patients_rm.find(console.app, q)}", status_code=303
            )
        except PhiguardError as exc:
            error = str(exc)
    return request.app.state.renderer.page(request, "patients.html", error=error)


def _patient_page(
    request: Request,
    console: ConsoleDep,
    user: Principal,
    patient_id: str,
    revealed: list[patients_rm.Revealed] | None = None,
) -> Response:
    card = patients_rm.card(console.app, patient_id)
    history = patient_history(console.app, patient_id, actor=user.actor, channel="console")
    return request.app.state.renderer.page(
        request,
        "patient.html",
        p=card,
        history=history,
        revealed=revealed or [],
        can_reveal=user.can(Perm.REVEAL),
    )


@router.get("/patients/{patient_id}", include_in_schema=False)
def patient(request: Request, console: ConsoleDep, user: Reader, patient_id: str) -> Response:
    return _patient_page(request, console, user, patient_id)


@router.post("/patients/{patient_id}/reveal", include_in_schema=False)
def reveal(
    request: Request,
    console: ConsoleDep,
    user: Revealer,
    patient_id: str,
    reason: Annotated[str, Form(max_length=500)],
) -> Response:
    shown = patients_rm.reveal(
        console.app,
        [patient_id],
        actor=user.actor,
        reason=reason,
        context=f"patient page {patient_id}",
    )
    return _patient_page(request, console, user, patient_id, revealed=shown)


class HistoryItem(BaseModel):
    ts: datetime
    account_id: str
    role: str
    department: str
    organisation: str
    contractor: bool
    action: str
    fields: str
    purpose: str
    purpose_label: str
    outcome: str
    grant_id: str | None
    explained: bool


class HistoryOut(BaseModel):
    patient_id: str
    accesses: int
    contractor_accesses: int
    truncated: bool
    items: list[HistoryItem]


@router.get(
    "/v1/patients/{patient_id}/access-history",
    response_model=HistoryOut,
    responses={**AUTHED, **E404},
    tags=["patients"],
)
def access_history(
    console: ConsoleDep,
    patient_id: str,
    user: Annotated[Principal, Depends(Api(Perm.HISTORY_APP, Perm.PATIENTS_READ))],
    limit: int = 500,
) -> HistoryOut:
    """Who accessed this patient's record, when, why and under which grant (for the
    patients' app). The request itself is written to the audit log."""
    h = patient_history(
        console.app, patient_id, actor=user.actor, channel="api", limit=max(1, min(limit, 5000))
    )
    return HistoryOut(
        patient_id=patient_id,
        accesses=len(h.rows),
        contractor_accesses=h.contractor_count,
        truncated=h.truncated,
        items=[HistoryItem(**{k: getattr(r, k) for k in HistoryItem.model_fields}) for r in h.rows],
    )
