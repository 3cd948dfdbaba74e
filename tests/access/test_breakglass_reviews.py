"""Break-glass sessions and access-review campaigns."""

from __future__ import annotations

from datetime import timedelta

import pytest

from phiguard.access import breakglass, grants, reviews
from phiguard.access.lifecycle import sweep
from phiguard.access.pdp import decide
from phiguard.errors import Conflict, NotFound, PermissionDenied, UsageError
from tests.access.conftest import World


def test_break_glass_is_time_boxed_and_read_only(sqlite_app, sqlite_world, clock, sqlite_audit):
    app, audit = sqlite_app, sqlite_audit
    assert decide(app, account="d1", action="read", patient="P2")["decision"] == "deny"
    bg = breakglass.start(
        app, "d1", reason="unconscious patient transferred from KWC", patient_id="P2", minutes=60
    )
    res = decide(app, account="d1", action="read", patient="P2")
    assert res["decision"] == "allow"
    ob = next(o for o in res["obligations"] if o["type"] == "break_glass")
    assert ob["session_id"] == bg.session_id
    assert ob["review_due"].startswith("2026-04-05T09:00")  # 72 h by default
    assert decide(app, account="d1", action="export", patient="P2")["decision"] == "deny"
    assert decide(app, account="d1", action="read", cluster="KWC", rows=100)["decision"] == "deny"
    clock.advance(timedelta(minutes=61))
    assert decide(app, account="d1", action="read", patient="P2")["decision"] == "deny"
    assert "access:breakglass:started" in audit.tags()


def test_break_glass_needs_a_reason_and_limits(sqlite_app):
    World(sqlite_app).standard()
    for kw, error, match in [
        ({"reason": ""}, UsageError, "reason is required"),
        ({"reason": "because"}, UsageError, "at least 10"),
        ({"minutes": 10_000}, UsageError, "lasts 1 to 240"),
        ({"patient_id": "P404"}, NotFound, "unknown patient"),
    ]:
        args = {"reason": "cardiac arrest in the ward", **kw}
        with pytest.raises(error, match=match):
            breakglass.start(sqlite_app, "d1", **args)
    assert breakglass.listing(sqlite_app) == []


def test_break_glass_review_overdue_is_escalated(sqlite_app, clock, sqlite_audit):
    World(sqlite_app).standard()
    bg = breakglass.start(sqlite_app, "d1", reason="cardiac arrest in the ward", patient_id="P2")
    with pytest.raises(Conflict, match="already has break-glass"):
        breakglass.start(sqlite_app, "d1", reason="second emergency now", patient_id="P1")
    with pytest.raises(PermissionDenied, match="own"):
        breakglass.review(
            sqlite_app, bg.session_id, reviewer="d1", outcome="justified", note="fine"
        )
    clock.advance(timedelta(hours=71))
    assert sweep(sqlite_app).escalated == []
    clock.advance(timedelta(hours=2))
    assert sweep(sqlite_app).escalated == [bg.session_id]
    assert sweep(sqlite_app).escalated == []  # escalated once
    assert "access:breakglass:escalated" in sqlite_audit.tags()
    overdue = breakglass.listing(sqlite_app, overdue_only=True)
    assert overdue[0]["escalated"] and overdue[0]["review_overdue"]
    reviewed = breakglass.review(
        sqlite_app,
        bg.session_id,
        reviewer="m2",
        outcome="justified",
        note="confirmed with ED charge nurse",
    )
    assert reviewed.outcome == "justified"
    assert breakglass.listing(sqlite_app, overdue_only=True) == []


def test_break_glass_does_not_override_a_suspension(sqlite_app):
    from phiguard.access import vendors

    World(sqlite_app).standard()
    breakglass.start(sqlite_app, "c1", reason="production outage on PAS", cluster="KEC")
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"
    vendors.suspend(sqlite_app, "V1", reason="leak", actor="m1")
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "deny"


def test_review_campaign_certify_revoke_and_lapse(app, world, clock, audit):
    world.contractor("c2")
    world.contractor("c3")
    g1 = world.grant("c1", duration="168h", approvers=("m1",))
    g2 = world.grant("c2", duration="168h", approvers=("m2",))
    g3 = world.grant("c3", duration="168h", approvers=("m1",))
    camp = reviews.start_campaign(
        app, name="April contractors", owner="m2", deadline=clock.now() + timedelta(days=3)
    )
    items = {i["grant_id"]: i for i in reviews.campaign_items(app, camp.campaign_id)["items"]}
    assert set(items) == {g1, g2, g3}
    assert items[g1]["reviewer"] == "m1" and items[g2]["reviewer"] == "m2"
    with pytest.raises(PermissionDenied, match="not the reviewer"):
        reviews.certify(app, items[g1]["item_id"], reviewer="d1")
    reviews.certify(app, items[g1]["item_id"], reviewer="m1")
    with pytest.raises(Conflict, match="already certified"):
        reviews.certify(app, items[g1]["item_id"], reviewer="m1")
    reviews.revoke_item(app, items[g2]["item_id"], reviewer="m2", comment="work finished")
    assert decide(app, account="c2", action="read", patient="P1")["decision"] == "deny"
    with pytest.raises(Conflict, match="--force"):
        reviews.close_campaign(app, camp.campaign_id, actor="m2")
    clock.advance(timedelta(days=3))
    with pytest.raises(Conflict, match="past its deadline"):
        reviews.certify(app, items[g3]["item_id"], reviewer="m1")
    report = sweep(app)
    assert report.campaigns_closed == [{"campaign_id": camp.campaign_id, "revoked": [g3]}]
    assert decide(app, account="c1", action="read", patient="P1")["decision"] == "allow"
    assert decide(app, account="c3", action="read", patient="P1")["decision"] == "deny"
    hist = grants.grant_history(app, g3)
    assert hist[-1]["kind"] == "revoked" and "not certified" in hist[-1]["reason"]
    assert [e["kind"] for e in grants.grant_history(app, g1)][-1] == "certified"
    for tag in (
        "access:review:started",
        "access:review:certified",
        "access:review:revoked",
        "access:review:closed",
    ):
        assert tag in audit.tags()


def test_campaign_needs_staff_owner_and_future_deadline(sqlite_app, clock):
    World(sqlite_app).standard()
    with pytest.raises(PermissionDenied):
        reviews.start_campaign(sqlite_app, name="x", owner="c1")
    with pytest.raises(UsageError, match="future"):
        reviews.start_campaign(
            sqlite_app, name="x", owner="m1", deadline=clock.now() - timedelta(days=1)
        )


def test_sweep_expires_grants_and_requests(sqlite_app, clock):
    w = World(sqlite_app).standard()
    gid = w.grant(duration="1h")
    req = grants.request_access(
        sqlite_app,
        account_id="c1",
        cluster="KWC",
        fields="name",
        actions="read",
        max_rows=1,
        purpose="HOPERAT",
        ticket="T",
        reason="check one record",
        duration="1h",
    )
    clock.advance(timedelta(hours=49))
    report = sweep(sqlite_app)
    assert report.expired == [gid] and report.requests_expired == [req.request_id]
    assert grants.list_grants(sqlite_app)[0]["status"] == "expired"
    assert grants.grant_history(sqlite_app, gid)[-1]["kind"] == "expired"
