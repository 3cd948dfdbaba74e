"""Public pages: "verify a notice" (anyone) and the patient portal (a patient session opened
from the hospital's app): "was my data in a leak?" and who accessed my record."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from phiguard.web.deps import ConsoleDep, PortalDep
from phiguard.web.routes import client_ip, user_agent

router = APIRouter(include_in_schema=False)


def _verify_form(
    request: Request, console: ConsoleDep, status: int = 200, **ctx: object
) -> Response:
    token = request.cookies.get(console.login_csrf_cookie) or secrets.token_urlsafe(32)
    resp = request.app.state.renderer.page(
        request, "verify.html", status=status, csrf_token=token, **ctx
    )
    resp.set_cookie(console.login_csrf_cookie, token, max_age=3600, **console.cookie_args())
    return resp


@router.get("/verify")
def verify_page(request: Request, console: ConsoleDep) -> Response:
    return _verify_form(request, console)


@router.post("/verify")
def verify(
    request: Request,
    console: ConsoleDep,
    code: Annotated[str, Form(max_length=64)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    cookie = request.cookies.get(console.login_csrf_cookie, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        return _verify_form(
            request, console, status=403, error="The form expired. Please try again."
        )
    from phiguard.incidents import verification
    from phiguard.incidents.settings import IncidentSettings

    result = verification.check(console.app, code, client=client_ip(request))
    status = 429 if result.status == "rate_limited" else 200
    return _verify_form(
        request,
        console,
        status=status,
        result=result,
        message_text=result.message(IncidentSettings()),
    )


@router.get("/portal/enter")
def portal_enter(request: Request, console: ConsoleDep, ticket: str = "") -> Response:
    patient_id = console.portal.redeem(ticket[:100])
    token = console.sessions.start_patient(
        patient_id, client_ip=client_ip(request), user_agent=user_agent(request)
    )
    # Not a redirect: a SameSite=Strict cookie set on a navigation that started in another
    # site (the app) is not sent on the redirect that follows; a same-site step is needed.
    resp = request.app.state.renderer.page(request, "portal_enter.html")
    resp.set_cookie(console.cookie_name, token, **console.cookie_args())
    return resp


@router.get("/portal")
def portal(request: Request, console: ConsoleDep, patient: PortalDep) -> Response:
    from phiguard.web.readmodels.history import patient_history
    from phiguard.web.readmodels.leaks import leak_check

    actor = f"patient:{patient.patient_id}"
    leak = leak_check(console.app, patient.patient_id, actor=actor)
    history = patient_history(console.app, patient.patient_id, actor=actor, channel="portal")
    return request.app.state.renderer.page(
        request, "portal.html", leak=leak, history=history, csrf_token=patient.session.csrf_token
    )
