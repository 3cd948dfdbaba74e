"""Response headers, CSRF on every state-changing route, and what reaches the audit log."""

from __future__ import annotations

from phiguard.web.app import iter_routes
from tests.web.conftest import Browser, WebEnv, actions
from tests.web.test_authorisation import EXPECTED, PUBLIC, ROLES, SPECIAL, url_of


def test_security_headers_on_pages_api_and_static(sqlite_web: WebEnv) -> None:
    client = sqlite_web.client()
    for url in ("/login", "/v1/health", "/static/app.css", "/no-such-page"):
        resp = client.get(url)
        csp = resp.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in resp.headers  # plain HTTP here
    assert client.get("/login").headers["cache-control"] == "no-store"
    assert "no-store" not in client.get("/static/app.js").headers.get("cache-control", "")


def test_pages_carry_no_inline_script(sqlite_web: WebEnv) -> None:
    b = sqlite_web.browser()
    b.login(sqlite_web.account("admin"))
    for url in ("/", "/admin/users", "/admin/tokens", "/account", "/audit"):
        html = b.get(url).text
        assert "<script>" not in html and " on" + "click=" not in html and "style=" not in html


def _allowed_role(rule: object) -> str | None:
    return next((r for r in ROLES if r in rule), None)  # type: ignore[operator]


def test_every_state_changing_route_needs_the_csrf_token(sqlite_web: WebEnv) -> None:
    browsers: dict[str, Browser] = {}
    for role in ROLES:
        b = sqlite_web.browser()
        b.login(sqlite_web.account(role))
        browsers[role] = b
    checked = 0
    for method, path, _ in iter_routes(sqlite_web.api):  # type: ignore[arg-type]
        rule = EXPECTED[(method, path)]
        if method != "POST" or rule in (PUBLIC, SPECIAL):
            continue
        role = _allowed_role(rule)
        if role is None:
            continue  # token-only routes: bearer tokens are not ambient, no CSRF risk
        b = browsers[role]
        url = url_of(path)
        if path.startswith("/v1/"):
            resp = b.client.post(url, json={}, follow_redirects=False)
        else:
            resp = b.client.post(url, data={"csrf_token": "forged"}, follow_redirects=False)
        assert resp.status_code == 403, (path, resp.status_code)
        assert "did not come from this console" in resp.text, path
        checked += 1
    assert checked > 40


def test_login_form_rejects_cross_site_posts(sqlite_web: WebEnv) -> None:
    account = sqlite_web.account("auditor")
    client = sqlite_web.client()
    resp = client.post(
        "/login",
        data={"username": account.username, "password": account.password},
        follow_redirects=False,
    )
    assert resp.status_code == 403 and "form expired" in resp.text


def test_oversized_body_refused_before_reading(sqlite_web: WebEnv) -> None:
    client = sqlite_web.client()
    limit = sqlite_web.settings.max_upload_mb * 1024 * 1024
    resp = client.post("/v1/events", content=b"x", headers={"content-length": str(limit + 1)})
    assert resp.status_code == 413


def test_validation_errors_do_not_echo_input(sqlite_web: WebEnv) -> None:
    admin = sqlite_web.account("admin")
    b = sqlite_web.browser()
    b.login(admin)
    secret = "A123456(3)-not-a-number"
    resp = b.client.post("/v1/users", json={"username": secret}, headers={"X-CSRF-Token": b.csrf})
    assert resp.status_code == 422 and secret not in resp.text


def test_account_actions_reach_the_audit_log(sqlite_web: WebEnv) -> None:
    admin = sqlite_web.account("admin")
    b = sqlite_web.browser()
    b.login(admin)
    tags = [a["tag"] for a in actions(sqlite_web.app)]
    assert "console:user:created" in tags and "console:user:login" in tags
