"""Requests, approvals and grants: the rules a user relies on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from phiguard.access import grants
from phiguard.access.models import AccessRequest, Approval, GrantEvent
from phiguard.access.pdp import decide
from phiguard.errors import Conflict, NotFound, PermissionDenied, UsageError
from phiguard.storage.models import Grant
from tests.access.conftest import World, configure


def _req(app, **kw):
    args = dict(
        account_id="c1",
        cluster="KEC",
        fields="name,sex",
        actions="read",
        max_rows=20,
        purpose="HOPERAT",
        ticket="CHG-7",
        reason="index rebuild on PAS",
        duration="4h",
    )
    args.update(kw)
    return grants.request_access(app, **args)


def test_small_request_needs_one_approver_and_window_starts_at_approval(
    sqlite_app, sqlite_world, clock, sqlite_audit
):
    app, audit = sqlite_app, sqlite_audit
    req = _req(app)
    assert req.required_approvals == 1 and req.status == "pending"
    clock.advance(timedelta(hours=3))  # approved three hours after the request
    outcome = grants.approve(app, req.request_id, "m1")
    g = outcome.grant
    assert g is not None
    assert g.valid_from == clock.now()
    assert g.valid_to - g.valid_from == timedelta(hours=4)
    assert "access:grant:requested" in audit.tags() and "access:grant:approved" in audit.tags()
    assert decide(app, account="c1", action="read", patient="P1")["decision"] == "allow"


def test_sensitive_requests_need_two_distinct_approvers(sqlite_app):
    w = World(sqlite_app).standard()
    cases = [
        {"actions": "read,export"},
        {"fields": "name,hkid"},
        {"fields": "*"},
        {"cluster": "ALL"},
        {"max_rows": 5_000},
    ]
    for n, kw in enumerate(cases):
        account = w.contractor(f"s{n}")
        req = _req(sqlite_app, account_id=account, **kw)
        assert req.required_approvals == 2, kw
        first = grants.approve(sqlite_app, req.request_id, "m1")
        assert first.grant is None and first.approvals == 1
        with pytest.raises(Conflict, match="already approved"):
            grants.approve(sqlite_app, req.request_id, "m1")
        second = grants.approve(sqlite_app, req.request_id, "m2")
        assert second.grant is not None
        assert second.grant.approved_by == "m1,m2"


def test_two_person_row_threshold_is_a_setting(sqlite_app):
    World(sqlite_app).standard()
    configure(sqlite_app, two_person_rows=10)
    assert _req(sqlite_app, max_rows=11).required_approvals == 2


def test_nobody_approves_their_own_request(sqlite_app):
    w = World(sqlite_app).standard()
    w.account("m3", role="it_manager")
    # staff member m3 files for contractor c1; neither c1 nor m3 may approve
    req = _req(sqlite_app, requested_by="m3")
    with pytest.raises(PermissionDenied, match="own request"):
        grants.approve(sqlite_app, req.request_id, "m3")
    # a staff member's own request
    own = _req(sqlite_app, account_id="m1", cluster="KWC")
    with pytest.raises(PermissionDenied, match="own request"):
        grants.approve(sqlite_app, own.request_id, "m1")


def test_forged_or_ineligible_approver_ids_are_refused_and_nothing_is_written(sqlite_app):
    w = World(sqlite_app).standard()
    w.contractor("c2")
    req = _req(sqlite_app)
    for approver, match in (
        ("ghost", "not a known account"),
        ("c2", "contractor account"),
        ("", "not a known account"),
        ("m1 ", "not a known account"),
    ):
        with pytest.raises(PermissionDenied, match=match):
            grants.approve(sqlite_app, req.request_id, approver)
    with sqlite_app.session() as s:
        assert s.scalar(select(func.count()).select_from(Approval)) == 0
        assert s.scalar(select(func.count()).select_from(Grant)) == 0
        assert s.get(AccessRequest, req.request_id).status == "pending"


def test_disabled_approver_cannot_approve(sqlite_app):
    World(sqlite_app).standard()
    from phiguard.storage.models import Account

    with sqlite_app.session() as s:
        s.get(Account, "m1").status = "disabled"
    req = _req(sqlite_app)
    with pytest.raises(PermissionDenied, match="not an active account"):
        grants.approve(sqlite_app, req.request_id, "m1")


BAD_REQUESTS = [
    ({"account_id": "nobody"}, NotFound, "unknown account"),
    ({"duration": "200h"}, UsageError, "exceeds the maximum"),
    ({"duration": "0m"}, UsageError, "longer than zero"),
    ({"duration": "soon"}, UsageError, "not like"),
    ({"cluster": "MARS"}, UsageError, "cluster"),
    ({"actions": "read,delete"}, UsageError, "unknown action"),
    ({"actions": ""}, UsageError, "at least one action"),
    ({"fields": ""}, UsageError, "at least one field"),
    ({"fields": "name;hkid"}, UsageError, "not a field name"),
    ({"fields": "*,name"}, UsageError, "not a field name"),
    ({"max_rows": 0}, UsageError, "max rows"),
    ({"purpose": "FUN"}, UsageError, "purpose"),
    ({"reason": "x"}, UsageError, "reason"),
    ({"ticket": " "}, UsageError, "ticket"),
]


def test_bad_requests_are_refused_with_a_clear_error_and_no_state(sqlite_app):
    World(sqlite_app).standard()
    for kw, error, match in BAD_REQUESTS:
        with pytest.raises(error, match=match):
            _req(sqlite_app, **kw)
    with sqlite_app.session() as s:
        assert s.scalar(select(func.count()).select_from(AccessRequest)) == 0
        assert s.scalar(select(func.count()).select_from(GrantEvent)) == 0


def test_overlapping_windows_are_refused(sqlite_app):
    w = World(sqlite_app).standard()
    w.grant(actions="read,search")
    with pytest.raises(Conflict, match="overlaps grant"):
        _req(sqlite_app, actions="read")
    pending = _req(sqlite_app, cluster="KWC")
    with pytest.raises(Conflict, match=f"overlaps pending request {pending.request_id}"):
        _req(sqlite_app, cluster="KWC")
    with pytest.raises(Conflict, match="overlaps"):
        _req(sqlite_app, cluster="ALL")
    # a different purpose or disjoint actions is a different window
    assert _req(sqlite_app, actions="print").status == "pending"


def test_grants_expire_on_their_own(sqlite_app, clock):
    w = World(sqlite_app).standard()
    gid = w.grant(duration="2h")
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"
    clock.advance(timedelta(hours=2))
    res = decide(sqlite_app, account="c1", action="read", patient="P1")
    assert res["decision"] == "deny"
    assert any("it ended at" in r for r in res["reasons"])
    listed = grants.list_grants(sqlite_app, account_id="c1")
    assert listed[0]["grant_id"] == gid and listed[0]["status"] == "expired"


def test_single_use_grant_allows_exactly_once(sqlite_app, sqlite_audit):
    w = World(sqlite_app).standard()
    gid = w.grant(actions="export", max_rows=100, single_use=True)
    first = decide(sqlite_app, account="c1", action="export", cluster="KEC", rows=50)
    assert first["decision"] == "allow"
    assert {"type": "single_use", "grant_id": gid} in first["obligations"]
    second = decide(sqlite_app, account="c1", action="export", cluster="KEC", rows=50)
    assert second["decision"] == "deny"
    assert any("used" in r for r in second["reasons"])
    assert "access:grant:consumed" in sqlite_audit.tags()
    kinds = [e["kind"] for e in grants.grant_history(sqlite_app, gid)]
    assert kinds[-1] == "used"


def test_request_expires_without_approvals(sqlite_app, clock):
    World(sqlite_app).standard()
    req = _req(sqlite_app)
    clock.advance(timedelta(hours=49))
    with pytest.raises(Conflict, match="expired"):
        grants.approve(sqlite_app, req.request_id, "m1")


def test_deny_revokes_the_accounts_grants_over_that_scope(sqlite_app):
    w = World(sqlite_app).standard()
    gid = w.grant(cluster="KEC")
    wider = _req(sqlite_app, actions="export", cluster="KEC", max_rows=60_000)
    req, revoked = grants.deny(sqlite_app, wider.request_id, "m2", "no bulk export")
    assert req.status == "denied" and revoked == [gid]
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "deny"


def test_revoke_and_history_is_kept(app, world, audit):
    gid = world.grant()
    with pytest.raises(PermissionDenied):
        grants.revoke(app, gid, "c2-not-staff", "testing")
    grants.revoke(app, gid, "m2", "work finished")
    with pytest.raises(Conflict, match="already revoked"):
        grants.revoke(app, gid, "m2", "again")
    hist = grants.grant_history(app, gid)
    assert [e["kind"] for e in hist] == ["requested", "approved", "granted", "revoked"]
    assert hist[-1]["reason"] == "work finished" and hist[-1]["actor"] == "m2"
    assert "access:grant:revoked" in audit.tags()
    assert decide(app, account="c1", action="read", patient="P1")["decision"] == "deny"


def test_request_on_behalf_needs_staff(sqlite_app):
    w = World(sqlite_app).standard()
    w.contractor("c2")
    with pytest.raises(PermissionDenied):
        _req(sqlite_app, requested_by="c2")
