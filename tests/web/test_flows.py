"""The console's flows over a small synthetic hospital, through HTTP: patient views and
reveals are audited, alert triage, two-person grant approval, the vendor kill switch behind
re-authentication, the API for clinical systems and for the patients' app."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from phiguard.app import App
from phiguard.clock import HKT, FixedClock
from phiguard.settings import Settings
from phiguard.web import create_app
from phiguard.web.config import WebSettings
from tests.web.conftest import PASSWORD, Account, Browser, WebEnv, actions
from tests.web.hospital import Hospital, build


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebEnv, Hospital]]:
    root = tmp_path_factory.mktemp("flows")
    clock = FixedClock(datetime(2026, 4, 3, 9, 0, tzinfo=HKT))
    app = App.init(Settings(home=root / "home"), clock=clock)
    hospital = build(app, root / "data")
    settings = WebSettings(token_cache_seconds=0)
    yield WebEnv(app, create_app(app, settings), clock, settings), hospital
    app.close()


_made: dict[str, Account] = {}


def user(web: WebEnv, role: str, name: str, hospital_account: str | None = None) -> Account:
    if name not in _made:
        e = web.app_users().create(name, role, PASSWORD, actor="test", account_id=hospital_account)
        _made[name] = Account(name, role, PASSWORD, e.totp_secret)
    return _made[name]


def logged_in(web: WebEnv, role: str, name: str, hospital_account: str | None = None) -> Browser:
    b = web.browser()
    b.login(user(web, role, name, hospital_account))
    return b


def test_alert_triage_page_shows_reasons_chart_and_masked_patients(env) -> None:  # type: ignore[no-untyped-def]
    web, hospital = env
    top = hospital.alerts[0]
    b = logged_in(web, "security_analyst", "sa-triage")
    listing = b.get("/alerts?status=all")
    assert top["alert_id"] in listing.text
    page = b.get(f"/alerts/{top['alert_id']}")
    assert page.status_code == 200
    assert top["reasons"][0].split(";")[0] in page.text.replace("&#39;", "'")
    assert "<svg" in page.text and "its usual day (baseline)" in page.text
    assert "••••••••" in page.text  # names masked by default
    views = [
        a
        for a in actions(web.app)
        if a["tag"] == "console:patient:viewed" and a["subject"] == top["alert_id"]
    ]
    assert views and views[-1]["actor"] == "sa-triage"
    resp = b.post(
        f"/alerts/{top['alert_id']}/verdict",
        {"verdict": "true_positive", "note": "confirmed with vendor"},
    )
    assert resp.status_code == 303
    assert "true positive" in b.get(f"/alerts/{top['alert_id']}").text


def test_reveal_needs_recent_password_and_is_audited(env) -> None:  # type: ignore[no-untyped-def]
    web, hospital = env
    patient_id = hospital.alerts[0]["patient_ids_sample"][0]
    account = user(web, "privacy_officer", "po-reveal")
    b = web.browser()
    b.login(account)
    page = b.get(f"/patients/{patient_id}")
    assert page.status_code == 200 and "Who accessed the record" in page.text
    web.clock.advance(timedelta(minutes=web.settings.reauth_minutes + 1))
    resp = b.post(f"/patients/{patient_id}/reveal", {"reason": "patient complaint #4411"})
    assert resp.status_code == 303 and resp.headers["location"].startswith("/reauth")
    b.reauth(account)
    shown = b.post(f"/patients/{patient_id}/reveal", {"reason": "patient complaint #4411"})
    assert shown.status_code == 200
    hkid = re.search(r'id="revealed-hkid">([^<]+)<', shown.text).group(1)
    assert re.fullmatch(r"[A-Z]{1,2}[0-9]{6}\([0-9A]\)", hkid)
    log = actions(web.app)
    revealed = [a for a in log if a["tag"] == "console:identifier:revealed"]
    assert revealed[-1]["actor"] == "po-reveal" and patient_id in revealed[-1]["subject"]
    assert revealed[-1]["detail"]["reason"] == "patient complaint #4411"
    # the log names who and why, never the HKID itself
    assert hkid.replace("(", "").replace(")", "") not in json.dumps(log)
    viewed = [a for a in log if a["tag"] == "console:patient:viewed" and a["subject"] == patient_id]
    assert viewed


def test_access_history_api_for_the_patients_app(env) -> None:  # type: ignore[no-untyped-def]
    web, hospital = env
    patient_id = hospital.alerts[0]["patient_ids_sample"][0]
    token = web.token("patients:history", name="patients app")
    client = web.client()
    resp = client.get(
        f"/v1/patients/{patient_id}/access-history", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["accesses"] >= 1 and body["contractor_accesses"] >= 1
    contractor = next(i for i in body["items"] if i["contractor"])
    assert contractor["account_id"] == hospital.alerts[0]["account_id"]
    served = [a for a in actions(web.app) if a["tag"] == "console:patient:history-served"]
    assert served[-1]["subject"] == patient_id
    missing = client.get(
        "/v1/patients/NOPE/access-history", headers={"Authorization": f"Bearer {token}"}
    )
    assert missing.status_code == 404


def test_two_person_grant_approval(env) -> None:  # type: ignore[no-untyped-def]
    web, _ = env
    vm = logged_in(web, "vendor_manager", "vm-one", "kcc-it-0001")
    resp = vm.post(
        "/grants/requests",
        {
            "account_id": "vx-eng-07",
            "cluster": "ALL",
            "fields": "name,hkid",
            "actions": "print",
            "max_rows": "20",
            "purpose": "SYSADMIN",
            "ticket": "CHG-1201",
            "reason": "database maintenance window",
            "duration": "4h",
        },
    )
    assert resp.status_code == 303, resp.text
    page = vm.get("/grants")
    request_id = re.search(r'id="req-([^"]+)"', page.text).group(1)
    assert "two-person" in page.text
    # the requester cannot approve their own request
    own = vm.post(f"/grants/requests/{request_id}/approve")
    assert own.status_code == 403 and "own request" in own.text
    po = logged_in(web, "privacy_officer", "po-approve", "hkec-dr-0001")
    assert po.post(f"/grants/requests/{request_id}/approve").status_code == 303
    assert "1 of 2" in po.get("/grants").text
    again = po.post(f"/grants/requests/{request_id}/approve")
    assert again.status_code == 409
    vm2 = logged_in(web, "vendor_manager", "vm-two", "hkwc-dr-0001")
    assert vm2.post(f"/grants/requests/{request_id}/approve").status_code == 303
    grants = vm2.get("/grants?status=active").text
    assert "vx-eng-07" in grants and request_id not in re.findall(r'id="req-([^"]+)"', grants)


def test_vendor_suspension_needs_reauthentication(env) -> None:  # type: ignore[no-untyped-def]
    web, hospital = env
    vendor = hospital.alerts[0]["vendor_id"]
    account = user(web, "security_analyst", "sa-kill")
    b = web.browser()
    b.login(account)
    web.clock.advance(timedelta(minutes=web.settings.reauth_minutes + 1))
    resp = b.post(
        f"/vendors/{vendor}/suspend",
        {"reason": "bulk export at night"},
        headers={"X-Return-To": f"/vendors/{vendor}"},
    )
    assert resp.status_code == 303 and resp.headers["location"].startswith("/reauth")
    assert "suspended" not in b.get(f"/vendors/{vendor}").text.split('id="vendor-status"')[1][:40]
    b.reauth(account)
    done = b.post(f"/vendors/{vendor}/suspend", {"reason": "bulk export at night"})
    assert done.status_code == 303
    assert "suspended" in b.get(f"/vendors/{vendor}").text
    tags = [a for a in actions(web.app) if a["tag"] == "access:vendor:suspended"]
    assert tags[-1]["actor"] == "sa-kill" and tags[-1]["subject"] == vendor


def test_decide_and_events_for_clinical_systems(env) -> None:  # type: ignore[no-untyped-def]
    web, _ = env
    token = web.token("decide,events:write", name="CMS KEC")
    client = web.client()
    h = {"Authorization": f"Bearer {token}"}
    resp = client.post(
        "/v1/decide",
        headers=h,
        json={
            "account": "vx-eng-07",
            "action": "export",
            "cluster": "KEC",
            "rows": 56000,
            "fields": ["name", "hkid"],
            "purpose": "SYSADMIN",
        },
    )
    assert resp.status_code == 200
    assert resp.json()["decision"] == "deny" and resp.json()["reasons"]
    bad = client.post("/v1/decide", headers=h, json={"account": "x", "action": "dance"})
    assert bad.status_code == 400
    row = {
        "event_id": "live-1",
        "source": "CMS-LIVE",
        "seq": 1,
        "ts": "2026-04-03T08:59:00+08:00",
        "account_id": "hkec-dr-0001",
        "action": "read",
        "patient_id": "P0000001",
        "fields": "name,sex",
        "query_id": "",
        "client_ip": "",
        "device_id": "",
        "purpose": "TREAT",
        "outcome": "success",
    }
    ingest = client.post(
        "/v1/events",
        headers={**h, "Content-Type": "application/x-ndjson"},
        content=json.dumps(row) + "\n",
    )
    assert ingest.status_code == 200, ingest.text
    assert ingest.json()["accepted"] == 1
    wrong = client.post("/v1/events", headers={**h, "Content-Type": "image/png"}, content=b"x")
    assert wrong.status_code == 400


def test_patient_portal_from_a_one_time_ticket(env) -> None:  # type: ignore[no-untyped-def]
    web, hospital = env
    patient_id = hospital.alerts[0]["patient_ids_sample"][0]
    token = web.token("portal:tickets", name="patients app portal")
    client = web.client()
    resp = client.post(
        "/v1/portal/tickets",
        json={"patient_id": patient_id},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 201
    url = resp.json()["url"].replace("http://testserver", "")
    patient = web.client()
    entered = patient.get(url)
    assert entered.status_code == 200 and 'href="/portal"' in entered.text
    page = patient.get("/portal")
    assert page.status_code == 200 and "Who accessed my record" in page.text
    assert "contractor" in page.text
    assert patient.get("/alerts", follow_redirects=False).status_code == 303  # no staff pages
    reuse = web.client().get(url, follow_redirects=False)
    assert reuse.status_code == 403  # single use


def test_verify_page_never_confirms_a_made_up_code(env) -> None:  # type: ignore[no-untyped-def]
    web, _ = env
    client = web.client()
    form = client.get("/verify")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    resp = client.post("/verify", data={"code": "ABCD-EFGH-JKLM", "csrf_token": token})
    assert resp.status_code == 200 and "Not genuine" in resp.text
    api = client.post("/v1/notices/verify", json={"code": "2345-6789-ABCD"})
    assert api.status_code == 200 and api.json()["genuine"] is False


def test_leak_scan_upload_and_incident(env) -> None:  # type: ignore[no-untyped-def]
    web, hospital = env
    assert hospital.leak_dump is not None
    b = logged_in(web, "privacy_officer", "po-scan")
    with Path(hospital.leak_dump).open("rb") as f:
        resp = b.client.post(
            "/v1/scans",
            files={"files": ("dump.csv", f, "text/csv")},
            headers={"X-CSRF-Token": b.csrf},
        )
    assert resp.status_code == 201, resp.text
    result = resp.json()
    assert result["affected_count"] > 0 and result["attribution"]
    page = b.get(f"/scans/{result['scan_id']}")
    assert f'id="affected-count">{result["affected_count"]:,}<' in page.text
    opened = b.post("/incidents", {"scan_id": result["scan_id"]})
    assert opened.status_code == 303
    incident = b.get(opened.headers["location"])
    assert "Regulator clocks" in incident.text and "ENISA" in incident.text
    assert not list(Path(web.app.home.root).rglob("dump.csv"))  # the upload is not kept


def test_dashboard_draws_its_charts(env) -> None:  # type: ignore[no-untyped-def]
    web, _ = env
    b = logged_in(web, "auditor", "aud-dash")
    page = b.get("/")
    assert page.status_code == 200
    assert page.text.count("<svg") >= 3
    assert "Accesses by hour of day" in page.text
