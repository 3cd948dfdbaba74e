"""The alert list's rendered table is reused between requests, yet a new alert or a verdict
shows on the very next request (SQLite and PostgreSQL)."""

from __future__ import annotations

from phiguard.detection import alerts as alerts_svc
from phiguard.detection.models import Alert
from phiguard.detection.settings import DetectionSettings
from tests.web.conftest import WebEnv


def _add(web: WebEnv, alert_id: str, severity: str, reason: str) -> None:
    now = web.clock.now()
    with web.app.session() as s:
        s.add(
            Alert(
                alert_id=alert_id,
                subject="acct-1",
                account_id="acct-1",
                vendor_id=None,
                rule="bulk_export",
                severity=severity,
                score=0.5,
                anomaly=0.0,
                first_ts=now,
                last_ts=now,
                patient_count=42,
                reasons=[reason],
                sample=["P1"],
                hits={"bulk_export": {}},
                status="open",
                origin="batch",
                created_at=now,
                updated_at=now,
            )
        )


def test_list_follows_new_alerts_and_verdicts(web: WebEnv) -> None:
    b = web.browser()
    b.login(web.account("security_analyst", "sa-list"))
    assert "No alerts." in b.get("/alerts").text
    _add(web, "a-9001", "high", "exported 42 records at night")
    page = b.get("/alerts").text
    assert "a-9001" in page and "exported 42 records at night" in page
    assert "a-9001" in b.get("/alerts?severity=high").text
    assert "a-9001" not in b.get("/alerts?severity=critical").text
    # same clock, same counts: only the status and verdict change
    alerts_svc.resolve(
        web.app, "a-9001", "false_positive", actor="sa-list", note=None, p=DetectionSettings()
    )
    assert "a-9001" not in b.get("/alerts").text
    assert "a-9001" in b.get("/alerts?status=resolved").text
    assert b.get("/alerts?severity=loud").status_code == 400
