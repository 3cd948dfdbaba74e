"""``create_app(app)``: the FastAPI application for one phiguard home.

Nothing is built at import time; tests build one per home. Errors from
:mod:`phiguard.errors` are mapped to HTTP statuses here and nowhere else: JSON for the
``/v1`` API, an HTML page for the console.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from phiguard.app import App
from phiguard.errors import (
    Conflict,
    CryptoError,
    DurabilityError,
    HomeError,
    InputError,
    IntegrityError,
    NotFound,
    PermissionDenied,
    PhiguardError,
    UsageError,
)
from phiguard.web.auth.throttle import Throttled
from phiguard.web.config import WebSettings
from phiguard.web.deps import LoginRequired, ReauthRequired
from phiguard.web.fastdecide import DecideFastPath
from phiguard.web.security import SecurityHeaders
from phiguard.web.state import Console
from phiguard.web.templating import Renderer

log = logging.getLogger("phiguard.web")

#: route modules, mounted in this order; each defines ``router`` (an APIRouter)
ROUTE_MODULES = (
    "auth",
    "account",
    "admin",
    "dashboard",
    "alerts",
    "incidents",
    "scans",
    "vendors",
    "audit",
    "patients",
    "public",
    "api_core",
    "api_access",
    "api_audit",
)

_STATUS: list[tuple[type[PhiguardError], int]] = [
    (Throttled, 429),
    (InputError, 422),
    (UsageError, 400),
    (NotFound, 404),
    (Conflict, 409),
    (PermissionDenied, 403),
    (IntegrityError, 409),
    (DurabilityError, 503),
    (HomeError, 500),
    (CryptoError, 500),
]


def status_for(exc: PhiguardError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/v1/") or request.url.path == "/v1"


def create_app(app: App, web: WebSettings | None = None, *, port: int = 8000) -> FastAPI:
    web = web or WebSettings()
    console = Console(app, web, port=port)
    renderer = Renderer()
    api = FastAPI(
        title="phiguard",
        version="1",
        summary="Protects patient data from the people allowed near it.",
        description=(
            "REST API of phiguard. Machine clients authenticate with a scoped bearer token "
            "(`Authorization: Bearer phg_…`); console users with their session cookie plus "
            "`X-CSRF-Token` on unsafe methods."
        ),
        openapi_url="/openapi.json",
        docs_url=None,  # Swagger UI needs inline script and a CDN: both refused by our CSP
        redoc_url=None,
    )
    api.state.console = console
    api.state.renderer = renderer

    @api.exception_handler(PhiguardError)
    async def _phiguard_error(request: Request, exc: PhiguardError) -> Response:
        status = status_for(exc)
        headers = {}
        if isinstance(exc, Throttled):
            headers["Retry-After"] = str(exc.retry_after)
        if status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        message = str(exc) if status < 500 else "internal error; see the server log"
        if _is_api(request):
            return JSONResponse({"detail": message}, status_code=status, headers=headers)
        resp = renderer.page(
            request, "error.html", status=status, status_code=status, detail=message
        )
        resp.headers.update(headers)
        return resp

    @api.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if _is_api(request):
            return JSONResponse(
                {"detail": "authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        from urllib.parse import urlencode

        return RedirectResponse(f"/login?{urlencode({'next': exc.next_url})}", status_code=303)

    @api.exception_handler(ReauthRequired)
    async def _reauth_required(request: Request, exc: ReauthRequired) -> Response:
        from urllib.parse import urlencode

        return RedirectResponse(f"/reauth?{urlencode({'next': exc.next_url})}", status_code=303)

    @api.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": _clean_errors(exc.errors())}, status_code=422)
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
        )
        return renderer.page(
            request,
            "error.html",
            status=422,
            status_code=422,
            detail=detail or "the form is incomplete",
        )

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request) or request.url.path.startswith("/static/"):
            return JSONResponse(
                {"detail": exc.detail},
                status_code=exc.status_code,
                headers=getattr(exc, "headers", None),
            )
        return renderer.page(
            request,
            "error.html",
            status=exc.status_code,
            status_code=exc.status_code,
            detail=str(exc.detail),
        )

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        if _is_api(request):
            return JSONResponse({"detail": "internal error"}, status_code=500)
        return HTMLResponse("<h1>Internal error</h1>", status_code=500)

    from importlib.resources import files

    api.mount(
        "/static", StaticFiles(directory=str(files("phiguard.web") / "static")), name="static"
    )
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"phiguard.web.routes.{name}")
        api.include_router(module.router)

    # added first, so it runs inside SecurityHeaders: the fast answers get the same headers
    api.add_middleware(DecideFastPath, console=console)
    api.add_middleware(SecurityHeaders, tls=web.tls, max_body=web.max_upload_mb * 1024 * 1024)
    return api


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the rejected input echoed back (it may be an identifier)."""
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def iter_routes(api: FastAPI) -> list[tuple[str, str, Any]]:
    """Every (method, path, route) the application serves, static files aside — for the
    authorisation-matrix test and the docs. Walks included routers on FastAPI versions that
    keep them as one node (``_IncludedRouter.original_router``) as well as older ones."""
    from fastapi.routing import APIRoute

    out: list[tuple[str, str, Any]] = []

    def walk(routes: Any) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
            elif isinstance(route, APIRoute):
                out.extend((m, route.path, route) for m in sorted(route.methods or ()))

    walk(api.router.routes)
    return sorted(out, key=lambda t: (t[1], t[0]))
