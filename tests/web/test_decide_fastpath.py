"""``POST /v1/decide`` answered before the framework: same answers, same errors, same
headers, and the decision in the audit log before the answer."""

from __future__ import annotations

from phiguard.access.pdp import decide
from tests.web.conftest import WebEnv, actions

BODY = {
    "account": "nobody-7",
    "action": "read",
    "cluster": "KEC",
    "fields": ["name"],
    "rows": 3,
    "purpose": "TREAT",
}


def _decisions(web: WebEnv) -> list[dict]:
    return [a for a in actions(web.app) if a["tag"] == "access:decision:made"]


def test_token_decision_is_logged_and_hardened(sqlite_web: WebEnv) -> None:
    token = sqlite_web.token("decide", name="CMS")
    client = sqlite_web.client()
    resp = client.post("/v1/decide", json=BODY, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert resp.json() == decide(sqlite_web.app, record=False, **BODY)
    assert resp.json()["decision"] == "deny"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["content-type"] == "application/json"
    logged = _decisions(sqlite_web)
    assert len(logged) == 1 and logged[0]["actor"] == "nobody-7"
    assert logged[0]["detail"]["rows"] == 3 and logged[0]["subject"] == "KEC"


def test_errors_are_the_frameworks(sqlite_web: WebEnv) -> None:
    client = sqlite_web.client()
    good = sqlite_web.token("decide")
    other = sqlite_web.token("alerts:read")
    h = {"Authorization": f"Bearer {good}"}
    missing = client.post("/v1/decide", json=BODY)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    forged = client.post(
        "/v1/decide", json=BODY, headers={"Authorization": f"Bearer {good[:-3]}xyz"}
    )
    assert forged.status_code == 401
    scope = client.post("/v1/decide", json=BODY, headers={"Authorization": f"Bearer {other}"})
    assert scope.status_code == 403 and "decide" in scope.json()["detail"]
    invalid = client.post("/v1/decide", json={"account": "x", "rows": -1}, headers=h)
    assert invalid.status_code == 422
    assert {tuple(e["loc"]) for e in invalid.json()["detail"]} == {
        ("body", "action"),
        ("body", "rows"),
    }
    not_json = client.post(
        "/v1/decide", content=b"{nope", headers={**h, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    form = client.post("/v1/decide", data={"account": "x", "action": "read"}, headers=h)
    assert form.status_code == 422
    usage = client.post("/v1/decide", json={"account": "x", "action": "dance"}, headers=h)
    assert usage.status_code == 400 and "unknown action" in usage.json()["detail"]
    for resp in (missing, scope, invalid, usage):
        assert resp.headers["cache-control"] == "no-store"
    assert _decisions(sqlite_web) == []  # nothing decided, nothing recorded


def test_revoked_token_stops_at_once(sqlite_web: WebEnv) -> None:
    tokens = sqlite_web.api.state.console.tokens  # type: ignore[attr-defined]
    issued = tokens.create("CMS", "decide", actor="test")
    client = sqlite_web.client()
    h = {"Authorization": f"Bearer {issued.secret}"}
    assert client.post("/v1/decide", json=BODY, headers=h).status_code == 200
    tokens.revoke(issued.view.token_id, actor="test")
    assert client.post("/v1/decide", json=BODY, headers=h).status_code == 401
