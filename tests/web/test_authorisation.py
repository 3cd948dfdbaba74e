"""The role × route matrix: every route the console serves, called by every role (and by
nobody), must answer exactly as this table says. The table is written out by hand — it is
the specification — and a route missing from it fails the test, so nobody adds a page or an
API call without deciding who may use it."""

from __future__ import annotations

import re

import pytest

from phiguard.web.app import iter_routes
from tests.web.conftest import Browser, WebEnv

A, P, S, V, U = "admin", "privacy_officer", "security_analyst", "vendor_manager", "auditor"
ROLES = (A, P, S, V, U)
ANY = frozenset(ROLES)
PUBLIC = "public"  # no login needed
SPECIAL = "special"  # its own state machine (login steps, patient portal): checked elsewhere
TOKEN = frozenset()  # no console role: API tokens only

R = frozenset
EXPECTED: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/"): ANY,
    ("GET", "/account"): ANY,
    ("POST", "/account/keys"): ANY,
    ("POST", "/account/keys/options"): ANY,
    ("POST", "/account/keys/{key_id}/remove"): ANY,
    ("POST", "/account/password"): ANY,
    ("POST", "/account/sessions/revoke-others"): ANY,
    ("POST", "/account/sessions/{public_id}/revoke"): ANY,
    ("GET", "/admin/tokens"): R({A}),
    ("POST", "/admin/tokens"): R({A}),
    ("POST", "/admin/tokens/{token_id}/revoke"): R({A}),
    ("POST", "/admin/tokens/{token_id}/rotate"): R({A}),
    ("GET", "/admin/users"): R({A}),
    ("POST", "/admin/users"): R({A}),
    ("POST", "/admin/users/{username}/mfa"): R({A}),
    ("POST", "/admin/users/{username}/status"): R({A}),
    ("GET", "/alerts"): R({P, S, U}),
    ("GET", "/alerts/{alert_id}"): R({P, S, U}),
    ("POST", "/alerts/{alert_id}/reveal"): R({P, S}),
    ("POST", "/alerts/{alert_id}/verdict"): R({P, S}),
    ("GET", "/audit"): R({A, P, S, U}),
    ("POST", "/audit/evidence"): R({P}),
    ("GET", "/audit/evidence/{name}"): R({P}),
    ("GET", "/audit/verify"): R({A, P, S, U}),
    ("GET", "/grants"): R({P, S, V, U}),
    ("POST", "/grants/requests"): R({V}),
    ("POST", "/grants/requests/{request_id}/approve"): R({P, V}),
    ("POST", "/grants/requests/{request_id}/deny"): R({P, V}),
    ("GET", "/grants/{grant_id}/history"): R({P, S, V, U}),
    ("POST", "/grants/{grant_id}/revoke"): R({P, V}),
    ("GET", "/incidents"): R({P, S, U}),
    ("POST", "/incidents"): R({P, S}),
    ("GET", "/incidents/{incident_id}"): R({P, S, U}),
    ("POST", "/incidents/{incident_id}/assess"): R({P, S}),
    ("POST", "/incidents/{incident_id}/contain"): R({P, S}),
    ("POST", "/incidents/{incident_id}/notes"): R({P, S}),
    ("POST", "/incidents/{incident_id}/notified"): R({P, S}),
    ("POST", "/incidents/{incident_id}/notify"): R({P, S}),
    ("POST", "/incidents/{incident_id}/reports"): R({P, S}),
    ("GET", "/incidents/{incident_id}/reports/{name}"): R({P, S, U}),
    ("POST", "/incidents/{incident_id}/tasks/{key}/done"): R({P, S}),
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/login/mfa"): SPECIAL,
    ("POST", "/login/mfa"): SPECIAL,
    ("POST", "/login/webauthn"): SPECIAL,
    ("POST", "/login/webauthn/options"): SPECIAL,
    ("POST", "/logout"): SPECIAL,
    ("GET", "/patients"): R({P, S}),
    ("GET", "/patients/{patient_id}"): R({P, S}),
    ("POST", "/patients/{patient_id}/reveal"): R({P, S}),
    ("GET", "/portal"): SPECIAL,
    ("GET", "/portal/enter"): SPECIAL,
    ("GET", "/reauth"): ANY,
    ("POST", "/reauth"): ANY,
    ("GET", "/reviews"): R({P, S, V, U}),
    ("POST", "/reviews"): R({P, V}),
    ("POST", "/reviews/items/{item_id}/{verdict}"): R({P, V}),
    ("GET", "/reviews/{campaign_id}"): R({P, S, V, U}),
    ("GET", "/scans"): R({P, S, U}),
    ("POST", "/scans"): R({P, S}),
    ("GET", "/scans/jobs/{job_id}"): R({P, S, U}),
    ("GET", "/scans/jobs/{job_id}/progress"): R({P, S, U}),
    ("GET", "/scans/{scan_id}"): R({P, S, U}),
    ("GET", "/v1/alerts"): R({P, S, U}),
    ("GET", "/v1/alerts/{alert_id}"): R({P, S, U}),
    ("POST", "/v1/alerts/{alert_id}/verdict"): R({P, S}),
    ("GET", "/v1/audit"): R({A, P, S, U}),
    ("POST", "/v1/audit/evidence"): R({P}),
    ("GET", "/v1/audit/evidence/{name}"): R({P}),
    ("GET", "/v1/audit/verification"): R({A, P, S, U}),
    ("POST", "/v1/decide"): TOKEN,
    ("POST", "/v1/events"): TOKEN,
    ("GET", "/v1/grants"): R({P, S, V, U}),
    ("GET", "/v1/grants/requests"): R({P, S, V, U}),
    ("POST", "/v1/grants/requests"): R({V}),
    ("POST", "/v1/grants/requests/{request_id}/approve"): R({P, V}),
    ("POST", "/v1/grants/requests/{request_id}/deny"): R({P, V}),
    ("POST", "/v1/grants/{grant_id}/revoke"): R({P, V}),
    ("GET", "/v1/health"): PUBLIC,
    ("GET", "/v1/incidents"): R({P, S, U}),
    ("POST", "/v1/incidents"): R({P, S}),
    ("GET", "/v1/incidents/{incident_id}"): R({P, S, U}),
    ("POST", "/v1/incidents/{incident_id}/close"): R({P, S}),
    ("POST", "/v1/incidents/{incident_id}/notes"): R({P, S}),
    ("GET", "/v1/me"): ANY,
    ("POST", "/v1/notices/verify"): PUBLIC,
    ("GET", "/v1/patients/{patient_id}/access-history"): R({P, S}),
    ("POST", "/v1/portal/tickets"): TOKEN,
    ("GET", "/v1/scans"): R({P, S, U}),
    ("POST", "/v1/scans"): R({P, S}),
    ("GET", "/v1/scans/{scan_id}"): R({P, S, U}),
    ("GET", "/v1/tokens"): R({A}),
    ("POST", "/v1/tokens"): R({A}),
    ("POST", "/v1/tokens/{token_id}/revoke"): R({A}),
    ("POST", "/v1/tokens/{token_id}/rotate"): R({A}),
    ("GET", "/v1/users"): R({A}),
    ("POST", "/v1/users"): R({A}),
    ("GET", "/v1/vendors"): R({P, S, V, U}),
    ("GET", "/v1/vendors/{vendor_id}"): R({P, S, V, U}),
    ("POST", "/v1/vendors/{vendor_id}/resume"): R({P, S, V}),
    ("POST", "/v1/vendors/{vendor_id}/suspend"): R({P, S, V}),
    ("GET", "/vendors"): R({P, S, V, U}),
    ("GET", "/vendors/{vendor_id}"): R({P, S, V, U}),
    ("POST", "/vendors/{vendor_id}/resume"): R({P, S, V}),
    ("POST", "/vendors/{vendor_id}/suspend"): R({P, S, V}),
    ("GET", "/verify"): PUBLIC,
    ("POST", "/verify"): PUBLIC,
}

#: scopes that open the token-only and token-capable API routes
TOKEN_ROUTES = {
    ("POST", "/v1/decide"): "decide",
    ("POST", "/v1/events"): "events:write",
    ("POST", "/v1/portal/tickets"): "portal:tickets",
    ("GET", "/v1/patients/{patient_id}/access-history"): "patients:history",
    ("GET", "/v1/alerts"): "alerts:read",
    ("GET", "/v1/audit"): "audit:read",
}
_DENIED = re.compile(r"may not do this|not allowed: needs")


def url_of(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-thing", path)


def call(b: Browser, method: str, path: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    url = url_of(path)
    h = {"X-CSRF-Token": b.csrf, **(headers or {})}
    if method == "GET":
        return b.client.get(url, headers=h, follow_redirects=False)
    if path.startswith("/v1/"):
        return b.client.post(url, json={}, headers=h, follow_redirects=False)
    return b.client.post(url, data={"csrf_token": b.csrf}, headers=h, follow_redirects=False)


def denied(resp) -> bool:  # type: ignore[no-untyped-def]
    return resp.status_code == 403 and bool(_DENIED.search(resp.text))


def to_login(resp) -> bool:  # type: ignore[no-untyped-def]
    if resp.status_code == 401:
        return True
    return resp.status_code == 303 and resp.headers["location"].startswith("/login")


@pytest.fixture
def sessions(sqlite_web: WebEnv) -> dict[str, Browser]:
    out = {}
    for role in ROLES:
        b = sqlite_web.browser()
        b.login(sqlite_web.account(role))
        out[role] = b
    return out


def test_every_route_is_in_the_table(sqlite_web: WebEnv) -> None:
    served = {(m, p) for m, p, _ in iter_routes(sqlite_web.api)}  # type: ignore[arg-type]
    assert served - set(EXPECTED) == set(), "routes nobody decided the roles of"
    assert set(EXPECTED) - served == set(), "table rows for routes that do not exist"


def test_role_route_matrix(sqlite_web: WebEnv, sessions: dict[str, Browser]) -> None:
    anonymous = sqlite_web.browser()
    problems = []
    for method, path, _ in iter_routes(sqlite_web.api):  # type: ignore[arg-type]
        rule = EXPECTED[(method, path)]
        if rule == SPECIAL:
            continue
        resp = call(anonymous, method, path)
        if rule == PUBLIC:
            if to_login(resp) or denied(resp):
                problems.append(f"{method} {path}: anonymous got {resp.status_code}")
            continue
        if not to_login(resp):
            problems.append(f"{method} {path}: anonymous got {resp.status_code}, not a login")
        for role, b in sessions.items():
            resp = call(b, method, path)
            allowed = role in rule  # type: ignore[operator]
            if allowed and (denied(resp) or to_login(resp) or resp.status_code >= 500):
                problems.append(f"{method} {path}: {role} refused ({resp.status_code})")
            if not allowed and not denied(resp):
                problems.append(f"{method} {path}: {role} got {resp.status_code}, expected 403")
    assert problems == []


def test_tokens_reach_only_their_scopes(sqlite_web: WebEnv) -> None:
    client = sqlite_web.client()
    scoped = {scope: sqlite_web.token(scope, name=scope) for scope in set(TOKEN_ROUTES.values())}
    for (method, path), scope in TOKEN_ROUTES.items():
        for have, token in scoped.items():
            h = {"Authorization": f"Bearer {token}"}
            url = url_of(path)
            resp = (
                client.get(url, headers=h)
                if method == "GET"
                else client.post(url, json={}, headers=h)
            )
            if have == scope:
                assert not denied(resp) and resp.status_code != 401, (path, have, resp.text)
            else:
                assert denied(resp), (path, have, resp.status_code)
    # tokens never open console pages, and a wrong secret is a 401
    token = scoped["alerts:read"]
    assert (
        client.get(
            "/alerts", headers={"Authorization": f"Bearer {token}"}, follow_redirects=False
        ).status_code
        == 303
    )
    forged = token[:-4] + "AAAA"
    assert (
        client.get("/v1/alerts", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    )


def test_revoked_token_stops_at_once(sqlite_web: WebEnv) -> None:
    client = sqlite_web.client()
    console = sqlite_web.api.state.console  # type: ignore[attr-defined]
    token = sqlite_web.token("alerts:read")
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/alerts", headers=h).status_code == 200
    console.tokens.revoke(token.split("_")[1], actor="test")
    assert client.get("/v1/alerts", headers=h).status_code == 401
