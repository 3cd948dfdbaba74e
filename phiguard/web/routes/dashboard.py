"""The dashboard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from phiguard.web.auth.roles import Perm
from phiguard.web.deps import ConsoleDep, Page, Principal

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard(request: Request, console: ConsoleDep,
              user: Annotated[Principal, Depends(Page(Perm.DASHBOARD))]) -> Response:
    return request.app.state.renderer.page(request, "dashboard.html")
