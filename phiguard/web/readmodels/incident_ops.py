"""Glue between console forms and :mod:`phiguard.incidents`: opening from a recorded scan,
the case view (summary, timeline, tasks, notices, reports) and report files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from phiguard.app import App
from phiguard.errors import NotFound, UsageError
from phiguard.incidents import cases, notify, playbook, reports
from phiguard.incidents.clocks import hkt

_REPORT = re.compile(r"(pcpd|cap653|hkcert|police|final)-[0-9]{8}T[0-9]{6}\.pdf")


def open_incident(
    app: App, *, actor: str, alert_id: str = "", scan_id: str = "", title: str = ""
) -> str:
    alert_id, scan_id, title = alert_id.strip(), scan_id.strip(), title.strip()
    if scan_id:
        from phiguard.leaks import scan as scan_svc

        doc = scan_svc.get_scan(app, scan_id)
        doc["affected_patients"] = [
            {"patient_id": pid, "matched_on": ["scan"], "confidence": 1.0}
            for pid in scan_svc.affected_patient_ids(app, scan_id)
        ]
        return cases.open_from(
            app, actor=actor, scan_doc=doc, alert_id=alert_id or None, title=title or None
        )
    if not alert_id and not title:
        raise UsageError("give an alert, a scan or a title")
    return cases.open_from(app, actor=actor, alert_id=alert_id or None, title=title or None)


def case_view(app: App, incident_id: str) -> dict[str, Any]:
    view = cases.summary(app, incident_id)
    view["timeline"] = cases.timeline(app, incident_id)
    with app.session() as s:
        view["task_list"] = [
            {
                "key": t.key,
                "title": t.title,
                "step": getattr(t, "step", ""),
                "owner": getattr(t, "owner", ""),
                "due": hkt(t.due),
                "status": t.status,
                "overdue": t.status == "open" and t.due < app.clock.now(),
            }
            for t in playbook.tasks(s, incident_id)
        ]
    view["notification"] = notify.status(app, incident_id)
    view["reports"] = report_files(app, incident_id)
    return view


def _folder(app: App, incident_id: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", incident_id):
        raise NotFound("no such incident")
    return app.home.exports / "incidents" / incident_id


def report_files(app: App, incident_id: str) -> list[dict[str, Any]]:
    folder = _folder(app, incident_id)
    if not folder.is_dir():
        return []
    return [
        {"name": p.name, "kind": p.name.split("-")[0], "bytes": p.stat().st_size}
        for p in sorted(folder.glob("*.pdf"), reverse=True)
        if _REPORT.fullmatch(p.name)
    ]


def write_report(app: App, incident_id: str, kind: str, *, actor: str) -> str:
    if kind not in reports.KINDS:
        raise UsageError(f"unknown report kind {kind!r}")
    cases.summary(app, incident_id)  # NotFound first
    folder = _folder(app, incident_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{kind}-{app.clock.now().strftime('%Y%m%dT%H%M%S')}.pdf"
    reports.write(app, incident_id, kind, folder / name, actor=actor)
    return name


def report_path(app: App, incident_id: str, name: str) -> Path:
    if not _REPORT.fullmatch(name):
        raise NotFound("no such report")
    path = _folder(app, incident_id) / name
    if not path.is_file():
        raise NotFound("no such report")
    return path


def start_notices(app: App, incident_id: str, channels: list[str], *, actor: str) -> dict[str, Any]:
    from phiguard.incidents.settings import IncidentSettings

    cfg = IncidentSettings()
    result = notify.create_campaign(app, incident_id, channels or None, actor=actor, cfg=cfg)
    transports = notify.configured_transports(cfg, [c for c in channels if c in ("app", "sms")])
    out = result.as_dict()
    if transports:
        out["dispatch"] = notify.dispatch(
            app, result.campaign_id, transports, actor=actor, cfg=cfg
        ).__dict__
    return out
