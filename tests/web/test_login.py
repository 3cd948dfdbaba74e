"""Logging in: password then TOTP, replay, throttling, timeouts, session handling."""

from __future__ import annotations

import re
from datetime import timedelta

from phiguard.web.auth import totp
from tests.web.conftest import _CSRF, WebEnv


def _password_step(b, account, password=None, ip_client=None):  # type: ignore[no-untyped-def]
    client = ip_client or b.client
    page = client.get("/login")
    token = _CSRF.search(page.text).group(1)
    return client.post(
        "/login",
        data={
            "username": account.username,
            "password": password or account.password,
            "csrf_token": token,
        },
        follow_redirects=False,
    )


def test_admin_login_needs_password_then_totp(web: WebEnv) -> None:
    admin = web.account("admin")
    b = web.browser()
    resp = _password_step(b, admin)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login/mfa")
    # half-logged-in: no page is reachable before the second factor
    assert b.client.get("/admin/users", follow_redirects=False).status_code == 303
    page = b.client.get("/login/mfa")
    token = _CSRF.search(page.text).group(1)
    wrong = b.client.post(
        "/login/mfa", data={"code": "000000", "csrf_token": token}, follow_redirects=False
    )
    assert wrong.status_code == 401 and "wrong, expired or already used" in wrong.text
    code = b.next_code(admin.secret)
    ok = b.client.post(
        "/login/mfa", data={"code": code, "csrf_token": token}, follow_redirects=False
    )
    assert ok.status_code == 303
    users = b.client.get("/admin/users")
    assert users.status_code == 200 and "admin" in users.text


def test_totp_code_cannot_be_replayed(web: WebEnv) -> None:
    officer = web.account("privacy_officer")
    first, second = web.browser(), web.browser()
    for b in (first, second):
        assert _password_step(b, officer).status_code == 303
    code = first.next_code(officer.secret)
    tokens = [_CSRF.search(b.client.get("/login/mfa").text).group(1) for b in (first, second)]
    ok = first.client.post(
        "/login/mfa", data={"code": code, "csrf_token": tokens[0]}, follow_redirects=False
    )
    assert ok.status_code == 303
    # the same code, still inside its 30 s window, from another browser: refused
    replay = second.client.post(
        "/login/mfa", data={"code": code, "csrf_token": tokens[1]}, follow_redirects=False
    )
    assert replay.status_code == 401


def test_session_id_changes_after_mfa(web: WebEnv) -> None:
    admin = web.account("admin")
    b = web.browser()
    _password_step(b, admin)
    before = b.client.cookies.get("phiguard_session")
    page = b.client.get("/login/mfa")
    token = _CSRF.search(page.text).group(1)
    b.client.post(
        "/login/mfa",
        data={"code": b.next_code(admin.secret), "csrf_token": token},
        follow_redirects=False,
    )
    after = b.client.cookies.get("phiguard_session")
    assert before and after and before != after
    # the pre-MFA id is dead
    other = web.client()
    other.cookies.set("phiguard_session", before)
    assert other.get("/", follow_redirects=False).status_code == 303


def test_wrong_password_and_unknown_user_look_the_same(web: WebEnv) -> None:
    analyst = web.account("security_analyst")
    b = web.browser()
    bad = _password_step(b, analyst, password="not-the-password-at-all")
    from tests.web.conftest import Account

    ghost = _password_step(b, Account("nobody-here", "auditor", "whatever-password-1", None))
    assert bad.status_code == ghost.status_code == 401
    assert "Wrong user name or password" in bad.text and "Wrong user name or password" in ghost.text


def test_account_locked_after_repeated_failures(web: WebEnv) -> None:
    analyst = web.account("security_analyst")
    b = web.browser()
    for _ in range(web.settings.login_max_failures_account):
        assert _password_step(b, analyst, password="guess-guess-guess").status_code == 401
    locked = _password_step(b, analyst)  # even the right password
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    web.clock.advance(timedelta(minutes=web.settings.login_window_minutes, seconds=1))
    assert _password_step(b, analyst).status_code == 303


def test_address_throttled_across_accounts(web: WebEnv) -> None:
    b = web.browser()
    from tests.web.conftest import Account

    for i in range(web.settings.login_max_failures_address):
        resp = _password_step(b, Account(f"spray-{i:03d}", "auditor", "Spring2026-spray!", None))
        assert resp.status_code == 401
    real = web.account("auditor")
    assert _password_step(b, real).status_code == 429


def test_idle_timeout_ends_session(web: WebEnv) -> None:
    auditor = web.account("auditor")
    b = web.browser()
    b.login(auditor)
    web.clock.advance(timedelta(minutes=web.settings.idle_timeout_minutes - 1))
    assert b.client.get("/", follow_redirects=False).status_code == 200
    web.clock.advance(timedelta(minutes=web.settings.idle_timeout_minutes, seconds=1))
    resp = b.client.get("/", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")


def test_absolute_timeout_ends_busy_session(web: WebEnv) -> None:
    auditor = web.account("auditor")
    b = web.browser()
    b.login(auditor)
    elapsed = timedelta()
    while elapsed < timedelta(hours=web.settings.absolute_timeout_hours) - timedelta(minutes=20):
        web.clock.advance(timedelta(minutes=20))
        elapsed += timedelta(minutes=20)
        assert b.client.get("/", follow_redirects=False).status_code == 200
    web.clock.advance(timedelta(minutes=25))
    assert b.client.get("/", follow_redirects=False).status_code == 303


def test_list_and_revoke_own_sessions(web: WebEnv) -> None:
    officer = web.account("privacy_officer")
    laptop, phone = web.browser(), web.browser()
    laptop.login(officer)
    phone.login(officer)
    page = laptop.get("/account")
    ids = re.findall(r"/account/sessions/([0-9a-f]+)/revoke", page.text)
    assert len(ids) == 1  # the other session; this one is marked "this one"
    assert laptop.post(f"/account/sessions/{ids[0]}/revoke").status_code == 303
    assert phone.client.get("/", follow_redirects=False).status_code == 303
    assert laptop.client.get("/", follow_redirects=False).status_code == 200


def test_cannot_revoke_someone_elses_session(web: WebEnv) -> None:
    a, b_acc = web.account("auditor", "aud-one"), web.account("auditor", "aud-two")
    first, second = web.browser(), web.browser()
    first.login(a)
    second.login(b_acc)
    third = web.browser()
    third.login(b_acc)
    theirs = re.findall(r"/account/sessions/([0-9a-f]+)/revoke", third.get("/account").text)
    assert theirs
    assert first.post(f"/account/sessions/{theirs[0]}/revoke").status_code == 404
    assert second.client.get("/", follow_redirects=False).status_code == 200


def test_logout_ends_session(web: WebEnv) -> None:
    auditor = web.account("auditor")
    b = web.browser()
    b.login(auditor)
    resp = b.post("/logout")
    assert resp.status_code == 303
    assert b.client.get("/", follow_redirects=False).status_code == 303


def test_login_redirect_never_leaves_the_site(web: WebEnv) -> None:
    auditor = web.account("auditor")
    b = web.browser()
    page = b.client.get("/login", params={"next": "//evil.example/phish"})
    token = _CSRF.search(page.text).group(1)
    resp = b.client.post(
        "/login",
        data={
            "username": auditor.username,
            "password": auditor.password,
            "csrf_token": token,
            "next": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/"


def test_cookies_are_httponly_and_samesite_strict(web: WebEnv) -> None:
    auditor = web.account("auditor")
    b = web.browser()
    page = b.client.get("/login")
    token = _CSRF.search(page.text).group(1)
    resp = b.client.post(
        "/login",
        data={"username": auditor.username, "password": auditor.password, "csrf_token": token},
        follow_redirects=False,
    )
    cookie = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie


def test_secure_host_cookie_when_tls(sqlite_web: WebEnv) -> None:
    from phiguard.web import create_app
    from phiguard.web.config import WebSettings

    api = create_app(sqlite_web.app, WebSettings(tls_cert="c.pem", tls_key="k.pem"))
    from fastapi.testclient import TestClient

    client = TestClient(api, base_url="https://testserver")
    resp = client.get("/login")
    assert "__Host-phiguard-login" in resp.headers["set-cookie"]
    assert "Secure" in resp.headers["set-cookie"]
    assert resp.headers["strict-transport-security"].startswith("max-age=")


def test_reauthentication_expires(web: WebEnv) -> None:
    officer = web.account("privacy_officer")
    b = web.browser()
    b.login(officer)
    console = web.api.state.console  # type: ignore[attr-defined]
    info = console.sessions.load(b.client.cookies.get("phiguard_session"))
    assert console.sessions.recently_authenticated(info)
    web.clock.advance(timedelta(minutes=web.settings.reauth_minutes + 1))
    info = console.sessions.load(b.client.cookies.get("phiguard_session"))
    assert not console.sessions.recently_authenticated(info)
    b.reauth(officer)
    info = console.sessions.load(b.client.cookies.get("phiguard_session"))
    assert console.sessions.recently_authenticated(info)


def test_totp_verify_accepts_one_step_of_drift(web: WebEnv) -> None:
    secret = totp.new_secret()
    now = web.clock.now()
    late = totp.code_at(secret, now - timedelta(seconds=30))
    assert totp.verify(secret, late, now=now, last_step=0) is not None
    ancient = totp.code_at(secret, now - timedelta(seconds=90))
    assert totp.verify(secret, ancient, now=now, last_step=0) is None
