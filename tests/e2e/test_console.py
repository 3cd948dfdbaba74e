"""The console in a real browser: login with MFA, triage the top alert, open the incident,
upload a leaked dump, approve a grant, verify a notice code. Screenshots of the main pages
go to docs/screenshots/ when PHIGUARD_SCREENSHOTS=1."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from phiguard.web.auth import totp
from tests.e2e.conftest import PASSWORD, Console

pytestmark = pytest.mark.browser


def login(page: Any, console: Console, username: str) -> None:
    page.goto(f"{console.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/login/mfa**")
    secret = console.users[username]
    assert secret
    page.fill("input[name=code]", totp.code_at(secret, datetime.now(UTC)))
    page.click("button[type=submit]")
    page.wait_for_url(f"{console.url}/")


def shot(page: Any, console: Console, name: str) -> None:
    page.screenshot(path=str(console.shots / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def officer(console: Console, browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    login(page, console, "po-chan")
    yield page
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_login_with_mfa_lands_on_dashboard(officer: Any, console: Console) -> None:
    assert officer.locator("h1").inner_text() == "Dashboard"
    assert officer.locator("svg.chart").count() >= 3
    shot(officer, console, "dashboard")


def test_wrong_code_is_refused(console: Console, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{console.url}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/login/mfa**")
    page.fill("input[name=code]", "000000")
    page.click("button[type=submit]")
    assert "wrong, expired or already used" in page.locator("#login-error").inner_text()
    page.close()


def test_triage_the_top_alert_and_open_the_incident(officer: Any, console: Console) -> None:
    top = console.hospital.alerts[0]
    officer.goto(f"{console.url}/alerts")
    shot(officer, console, "alerts")
    officer.click(f"text={top['alert_id']}")
    officer.wait_for_url(f"**/alerts/{top['alert_id']}")
    assert top["account_id"] in officer.locator("dl.facts").inner_text()
    assert officer.locator("svg.chart").count() == 1
    shot(officer, console, "alert")
    officer.select_option("#verdict", "true_positive")
    officer.click("#record-verdict")
    officer.wait_for_url("**msg=verdict")
    assert "true positive" in officer.locator("#alert-status").inner_text()
    officer.click("#open-incident")
    officer.wait_for_url("**/incidents/**")
    assert officer.locator("#clocks tbody tr").count() >= 1
    assert int(officer.locator("#incident-affected").inner_text().replace(",", "")) > 0
    shot(officer, console, "incident")


def test_upload_a_dump_and_see_the_result(officer: Any, console: Console) -> None:
    officer.goto(f"{console.url}/scans")
    officer.set_input_files("#dump-file", str(console.hospital.leak_dump))
    officer.click("#start-scan")
    officer.wait_for_url("**/scans/ls-*", timeout=60_000)
    affected = int(officer.locator("#affected-count").inner_text().replace(",", ""))
    assert affected > 0
    assert "hkid" in officer.locator("#fields-exposed").inner_text()
    assert officer.locator("#attribution tbody tr").count() >= 1
    shot(officer, console, "scan")


def test_approve_a_grant(officer: Any, console: Console) -> None:
    from phiguard.access import grants

    req = grants.request_access(
        console.app,
        account_id="hc-eng-01",
        cluster="KCC",
        fields="name",
        actions="print",
        max_rows=10,
        purpose="SYSADMIN",
        ticket="CHG-2207",
        reason="print ward list for audit",
        duration="2h",
        requested_by="kcc-it-0001",
    )
    officer.goto(f"{console.url}/grants")
    row = officer.locator(f"#req-{req.request_id}")
    assert "hc-eng-01" in row.inner_text()
    shot(officer, console, "grants")
    row.locator("button", has_text="Approve").click()
    officer.wait_for_url("**msg=approved")
    assert officer.locator(f"#req-{req.request_id}").count() == 0
    assert "hc-eng-01" in officer.locator("#grants").inner_text()


def test_verify_a_notice_code(console: Console, browser: Any) -> None:
    from sqlalchemy import select

    from phiguard.incidents import cases, notify
    from phiguard.incidents.models import Notice
    from phiguard.incidents.verification import CodeBook

    opened = cases.list_incidents(console.app)
    incident_id = (
        opened[0]["incident_id"]
        if opened
        else cases.open_from(
            console.app, actor="test", alert_id=console.hospital.alerts[0]["alert_id"]
        )
    )
    notify.create_campaign(console.app, incident_id, ["post"], actor="test")
    with console.app.session() as s:
        nonce = s.scalars(
            select(Notice.code_nonce).where(Notice.incident_id == incident_id)
        ).first()
    code = CodeBook(console.app).code(nonce)
    page = browser.new_page()
    page.goto(f"{console.url}/verify")
    page.fill("input[name=code]", code)
    page.click("button[type=submit]")
    assert page.locator("#verify-result").inner_text() == "Genuine"
    shot(page, console, "verify")
    page.fill("input[name=code]", "ABCD-EFGH-JKLM")
    page.click("button[type=submit]")
    assert page.locator("#verify-result").inner_text() == "Not genuine"
    page.close()


def test_admin_pages(console: Console, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    login(page, console, "admin")
    page.goto(f"{console.url}/admin/users")
    assert "po-chan" in page.locator("#users").inner_text()
    page.goto(f"{console.url}/alerts")
    assert "Not allowed" in page.locator("h1").inner_text()  # least privilege
    page.goto(f"{console.url}/audit")
    shot(page, console, "audit")
    context.close()


def test_patient_portal_opens_from_the_app(console: Console, browser: Any) -> None:
    patient_id = console.hospital.alerts[0]["patient_ids_sample"][0]
    from phiguard.web.auth.portal import Portal

    # the patients' app would call POST /v1/portal/tickets; the same service answers it
    ticket = Portal(console.app).issue(patient_id, issued_by="e2e")
    link = f"{console.url}/portal/enter?ticket={ticket}"
    page = browser.new_page()
    page.goto(link)
    page.wait_for_url(f"{console.url}/portal")
    assert "Who accessed my record" in page.content()
    assert page.locator("#history tbody tr").count() >= 1
    shot(page, console, "portal")
    page.goto(link)  # a ticket works once
    assert "expired" in page.content()
    page.close()
