"""Alert triage: the list, and one alert with its reasons, the account's activity around the
alert against its baseline, the patients touched (masked; revealed with a reason), and the
verdict."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from phiguard.audit.tags import Tag
from phiguard.detection import alerts as alerts_svc
from phiguard.detection.settings import DetectionSettings
from phiguard.web import charts
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import Api, ConsoleDep, Page, Principal
from phiguard.web.readmodels import activity
from phiguard.web.readmodels import patients as patients_rm
from phiguard.web.readmodels.alert_list import AlertListCache
from phiguard.web.routes.api_core import AUTHED, E400, E404, E409

router = APIRouter()
Reader = Annotated[Principal, Depends(Page(Perm.ALERTS_READ))]
Triager = Annotated[Principal, Depends(Page(Perm.ALERTS_TRIAGE))]
Revealer = Annotated[Principal, Depends(Page(Perm.REVEAL, recent=True))]


def alert_json(app: Any, alert: Any) -> dict[str, Any]:
    return alerts_svc.as_json(alert, app.settings.timezone)


@router.get("/alerts", include_in_schema=False)
async def alert_list(
    request: Request, console: ConsoleDep, _: Reader, status: str = "open", severity: str = ""
) -> Response:
    # async on purpose: the table is re-rendered only when the alerts change, and the check
    # is one ~0.1 ms aggregate query — cheaper on the event loop than a thread hand-off
    renderer = request.app.state.renderer
    lists = console.extras.get("alert_list")
    if lists is None:
        lists = console.extras["alert_list"] = AlertListCache(console.app, renderer)
    table = lists.table(status or "open", severity or "")
    return renderer.page(
        request, "alerts.html", table=table, status_filter=status, severity=severity
    )


def _alert_page(
    request: Request,
    console: ConsoleDep,
    user: Principal,
    alert_id: str,
    revealed: list[patients_rm.Revealed] | None = None,
) -> Response:
    app = console.app
    a = alert_json(app, alerts_svc.get(app, alert_id))
    # the patients touched are patient data: looking at them is recorded
    app.record(
        Tag.PATIENT_VIEWED,
        actor=user.actor,
        subject=alert_id,
        view="alert",
        patients=len(a["patient_ids_sample"]),
    )
    act = activity.around(app, a["account_id"], a["first_ts"]) if a["account_id"] else None
    chart = None
    if act is not None:
        chart = charts.line_chart(
            act.labels,
            [
                charts.Series("this account", act.values),
                charts.Series(
                    "its usual day (baseline)", act.baseline, color="#9aa3b5", dashed=True
                ),
            ],
            title="Records touched per hour around the alert",
            label_every=3,
            mark=act.mark,
        )
    return request.app.state.renderer.page(
        request,
        "alert.html",
        a=a,
        chart=chart,
        activity=act,
        revealed=revealed or [],
        can_triage=user.can(Perm.ALERTS_TRIAGE),
        can_reveal=user.can(Perm.REVEAL),
        can_open_incident=user.can(Perm.INCIDENTS_WRITE),
        verdicts=alerts_svc.VERDICTS,
    )


@router.get("/alerts/{alert_id}", include_in_schema=False)
def alert(request: Request, console: ConsoleDep, user: Reader, alert_id: str) -> Response:
    return _alert_page(request, console, user, alert_id)


@router.post("/alerts/{alert_id}/reveal", include_in_schema=False)
def reveal(
    request: Request,
    console: ConsoleDep,
    user: Revealer,
    alert_id: str,
    reason: Annotated[str, Form(max_length=500)],
) -> Response:
    a = alerts_svc.get(console.app, alert_id)
    shown = patients_rm.reveal(
        console.app, list(a.sample), actor=user.actor, reason=reason, context=f"alert {alert_id}"
    )
    return _alert_page(request, console, user, alert_id, revealed=shown)


@router.post("/alerts/{alert_id}/verdict", include_in_schema=False)
def verdict(
    console: ConsoleDep,
    user: Triager,
    alert_id: str,
    verdict: Annotated[str, Form(max_length=24)],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    alerts_svc.resolve(
        console.app, alert_id, verdict, actor=user.actor, note=note or None, p=DetectionSettings()
    )
    return RedirectResponse(f"/alerts/{alert_id}?msg=verdict", status_code=303)


class VerdictIn(BaseModel):
    verdict: str = Field(description="true_positive, false_positive or benign", max_length=24)
    note: str = Field("", max_length=2000)


@router.get("/v1/alerts", responses={**AUTHED, **E400}, tags=["alerts"])
def api_alerts(
    console: ConsoleDep,
    _: Annotated[Principal, Depends(Api(Perm.ALERTS_READ))],
    status: str = "open",
    severity: str | None = None,
    account_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts in spec §3.1 shape, most severe first."""
    rows = alerts_svc.list_alerts(
        console.app,
        status=status,
        severity=severity,
        account_id=account_id,
        limit=max(1, min(limit, 1000)),
    )
    return [alert_json(console.app, a) for a in rows]


@router.get("/v1/alerts/{alert_id}", responses={**AUTHED, **E404}, tags=["alerts"])
def api_alert(
    console: ConsoleDep, alert_id: str, user: Annotated[Principal, Depends(Api(Perm.ALERTS_READ))]
) -> dict[str, Any]:
    a = alert_json(console.app, alerts_svc.get(console.app, alert_id))
    console.app.record(
        Tag.PATIENT_VIEWED,
        actor=user.actor,
        subject=alert_id,
        view="alert",
        channel="api",
        patients=len(a["patient_ids_sample"]),
    )
    return a


@router.post(
    "/v1/alerts/{alert_id}/verdict", responses={**AUTHED, **E400, **E404, **E409}, tags=["alerts"]
)
def api_verdict(
    console: ConsoleDep,
    alert_id: str,
    body: VerdictIn,
    user: Annotated[Principal, Depends(Api(Perm.ALERTS_TRIAGE))],
) -> dict[str, Any]:
    a = alerts_svc.resolve(
        console.app,
        alert_id,
        body.verdict,
        actor=user.actor,
        note=body.note or None,
        p=DetectionSettings(),
    )
    return alert_json(console.app, a)
