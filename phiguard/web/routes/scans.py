"""Leak scans: upload a dump, watch progress, see affected count, fields and attribution."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from phiguard.audit.tags import Tag
from phiguard.leaks import scan as scan_svc
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import Api, ConsoleDep, Page, Principal
from phiguard.web.readmodels.scanjobs import ScanJobs
from phiguard.web.routes.api_core import AUTHED, E400, E404, E422

router = APIRouter()
Reader = Annotated[Principal, Depends(Page(Perm.LEAKS_READ))]
Scanner = Annotated[Principal, Depends(Page(Perm.LEAKS_SCAN))]


def jobs(console: ConsoleDep) -> ScanJobs:
    found = console.extras.get("scan_jobs")
    if found is None:
        found = console.extras["scan_jobs"] = ScanJobs(console.app, console.web.max_upload_mb << 20)
    return found


@router.get("/scans", include_in_schema=False)
def scans(request: Request, console: ConsoleDep, user: Reader) -> Response:
    return request.app.state.renderer.page(
        request,
        "scans.html",
        scans=scan_svc.list_scans(console.app),
        can_scan=user.can(Perm.LEAKS_SCAN),
    )


@router.post("/scans", include_in_schema=False)
def upload(
    console: ConsoleDep, user: Scanner, files: Annotated[list[UploadFile], File()]
) -> Response:
    folder, paths = jobs(console).stage([(f.filename, f.file) for f in files])
    job = jobs(console).start(folder, paths, actor=user.actor)
    return RedirectResponse(f"/scans/jobs/{job.job_id}", status_code=303)


@router.get("/scans/jobs/{job_id}", include_in_schema=False)
def job_page(request: Request, console: ConsoleDep, _: Reader, job_id: str) -> Response:
    job = jobs(console).get(job_id)
    if job.state == "done" and job.scan_id:
        return RedirectResponse(f"/scans/{job.scan_id}", status_code=303)
    return request.app.state.renderer.page(request, "scan_job.html", job=job.as_dict())


@router.get("/scans/jobs/{job_id}/progress", include_in_schema=False)
def job_progress(console: ConsoleDep, _: Reader, job_id: str) -> Response:
    return JSONResponse(jobs(console).get(job_id).as_dict())


@router.get("/scans/{scan_id}", include_in_schema=False)
def scan_page(request: Request, console: ConsoleDep, user: Reader, scan_id: str) -> Response:
    result = scan_svc.get_scan(console.app, scan_id)
    console.app.record(
        Tag.PATIENT_VIEWED,
        actor=user.actor,
        subject=scan_id,
        view="leak scan",
        patients=result.get("affected_count"),
    )
    return request.app.state.renderer.page(
        request, "scan.html", s=result, can_open_incident=user.can(Perm.INCIDENTS_WRITE)
    )


@router.get("/v1/scans", responses=AUTHED, tags=["leaks"])
def api_scans(
    console: ConsoleDep, _: Annotated[Principal, Depends(Api(Perm.LEAKS_READ))], limit: int = 50
) -> list[dict[str, Any]]:
    return scan_svc.list_scans(console.app, limit=max(1, min(limit, 500)))


@router.get("/v1/scans/{scan_id}", responses={**AUTHED, **E404}, tags=["leaks"])
def api_scan(
    console: ConsoleDep, scan_id: str, user: Annotated[Principal, Depends(Api(Perm.LEAKS_READ))]
) -> dict[str, Any]:
    result = scan_svc.get_scan(console.app, scan_id)
    console.app.record(
        Tag.PATIENT_VIEWED, actor=user.actor, subject=scan_id, view="leak scan", channel="api"
    )
    return result


@router.post(
    "/v1/scans",
    status_code=201,
    responses={**AUTHED, **E400, **E422, 413: {"description": "Too large"}},
    tags=["leaks"],
)
def api_scan_upload(
    console: ConsoleDep,
    files: Annotated[list[UploadFile], File()],
    user: Annotated[Principal, Depends(Api(Perm.LEAKS_SCAN))],
) -> dict[str, Any]:
    """Scan uploaded files now and return the spec §3.2 result (with ``scan_id``)."""
    folder, paths = jobs(console).stage([(f.filename, f.file) for f in files])
    return jobs(console).run_now(folder, paths, actor=user.actor)
