"""Notice campaigns: channel choice, template checks, retries, fallback, and resuming after a
transport failure without sending anything twice."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from sqlalchemy import func, select

from phiguard.errors import Conflict, UsageError
from phiguard.incidents import cases, notify
from phiguard.incidents.models import Campaign, Delivery, Notice
from phiguard.incidents.settings import IncidentSettings
from phiguard.incidents.transports import LINK, MockTransport


def _incident(h, cfg, count=None):
    return cases.open_from(h.app, actor="dpo", scan=h.scan(count), cfg=cfg)


def _notices(app, iid):
    with app.session() as s:
        return {
            n.patient_id: (n.plan, n.channel, n.state)
            for n in s.scalars(select(Notice).where(Notice.incident_id == iid))
        }


def test_plan_for_each_patient() -> None:
    every = notify.CHANNELS
    assert notify.plan_for(True, True, True, every) == ["app", "sms", "post", "phone"]
    assert notify.plan_for(False, False, True, every) == ["post"]
    assert notify.plan_for(False, False, False, every) == ["phone"]  # call list: trace them
    assert notify.plan_for(False, False, False, ("app", "sms")) == ["phone"]
    assert notify.plan_for(False, False, True, ("app", "sms")) is None  # waits for post
    with pytest.raises(UsageError, match="unknown channel"):
        notify.parse_channels("app,fax")


def test_campaign_queues_by_reachability(hospital, cfg) -> None:
    app = hospital.app
    iid = _incident(hospital, cfg)
    res = notify.create_campaign(app, iid, "app,sms", actor="dpo", cfg=cfg)
    n = _notices(app, iid)
    assert n["P0000001"][0] == "app,sms"  # odd ids have the app and a phone
    assert n["P0000000"][0] == "sms"
    assert n["P0000003"] == ("phone", "phone", "queued")  # nothing on file: call list
    assert "P0000005" not in n  # address only: waits for the letters
    assert res.deferred == 1 and res.call_list == 1
    # running it again notifies nobody twice
    again = notify.create_campaign(app, iid, "app,sms", actor="dpo", cfg=cfg)
    assert again.campaign_id == 0 and again.already_notified == len(n)
    with app.session() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 1


def test_missing_template_variable_queues_nothing(sqlite_hospital, tmp_path) -> None:
    from phiguard.incidents.playbook import SHIPPED

    doc = json.loads((SHIPPED / "notices.json").read_text())
    doc["sms"]["body"] = "Hello {patient_hkid}, code {code}"
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "notices.json").write_text(json.dumps(doc))
    cfg = IncidentSettings(templates_dir=tdir)
    app = sqlite_hospital.app
    iid = _incident(sqlite_hospital, cfg)
    with pytest.raises(UsageError, match=r"sms.body uses \{patient_hkid\}"):
        notify.create_campaign(app, iid, "sms", actor="dpo", cfg=cfg)
    empty = IncidentSettings(hotline=" ")
    with pytest.raises(UsageError, match="PHIGUARD_INCIDENTS_HOTLINE"):
        notify.create_campaign(app, iid, "app", actor="dpo", cfg=empty)
    with app.session() as s:
        assert s.scalar(select(func.count()).select_from(Notice)) == 0
        assert s.scalar(select(func.count()).select_from(Campaign)) == 0


def test_messages_say_what_a_notice_must_and_sms_has_no_link(sqlite_hospital, cfg) -> None:
    app = sqlite_hospital.app
    iid = _incident(sqlite_hospital, cfg)
    camp = notify.create_campaign(app, iid, "app,sms", actor="dpo", cfg=cfg)
    tr = {"app": MockTransport("app"), "sms": MockTransport("sms")}
    res = notify.dispatch(app, camp.campaign_id, tr, actor="dpo", cfg=cfg)
    assert res.interrupted is None and res.sent["app"] > 0 and res.sent["sms"] > 0
    sms = next(iter(tr["sms"].sent.values()))
    assert sms.recipient.startswith("9")  # decrypted in memory for the gateway only
    for text in (
        "HKID number, hospital file number",
        "Verification code",
        "never ask for your HKID",
        "身份證號碼",
        "核實碼",
        "絕不會要求",
        cfg.hotline,
    ):
        assert text in sms.body
    assert LINK.search(sms.body) is None
    push = next(iter(tr["app"].sent.values()))
    assert push.recipient.startswith("P")  # the app gateway gets the pseudonymous id only
    for text in (
        "What you can do",
        "never ask for your HKID number, a password or a payment",
        "閣下可以",
        cfg.hotline,
    ):
        assert text in push.body


def test_transport_failing_mid_campaign_resumes_without_sending_twice(hospital, cfg) -> None:
    app = hospital.app
    cfg = cfg.model_copy(update={"dispatch_batch": 4})
    iid = _incident(hospital, cfg)
    camp = notify.create_campaign(app, iid, "sms", actor="dpo", cfg=cfg)
    total = camp.queued["sms"]
    sms = MockTransport("sms", down_after=5)
    first = notify.dispatch(app, camp.campaign_id, {"sms": sms}, actor="dpo", cfg=cfg)
    assert first.interrupted and sum(first.sent.values()) == 5
    with app.session() as s:
        assert s.get(Campaign, camp.campaign_id).status == "interrupted"
    second = notify.dispatch(app, camp.campaign_id, {"sms": sms.recovered()}, actor="dpo", cfg=cfg)
    assert second.interrupted is None
    assert len(sms.sent) == total and sms.duplicates == []
    states = Counter(st for plan, ch, st in _notices(app, iid).values() if ch == "sms")
    assert states == {"sent": total}
    with app.session() as s:
        assert s.get(Campaign, camp.campaign_id).status == "done"
        assert s.scalar(select(func.count()).select_from(Delivery)) == total


def test_reply_lost_in_flight_is_settled_by_lookup_not_resent(sqlite_hospital, cfg) -> None:
    app = sqlite_hospital.app
    iid = _incident(sqlite_hospital, cfg)
    camp = notify.create_campaign(app, iid, "sms", actor="dpo", cfg=cfg)
    sms = MockTransport("sms", lose_reply_after=3)  # the 4th is accepted but the reply is lost
    first = notify.dispatch(app, camp.campaign_id, {"sms": sms}, actor="dpo", cfg=cfg)
    assert first.interrupted and len(sms.sent) == 4
    with app.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "sending"))
            == 1
        )
    second = notify.dispatch(app, camp.campaign_id, {"sms": sms}, actor="dpo", cfg=cfg)
    assert second.reconciled == 1 and second.resent_after_loss == 0
    assert sms.duplicates == [] and len(sms.sent) == camp.queued["sms"]


def test_failures_retry_then_fall_back_to_the_next_channel(sqlite_hospital, cfg) -> None:
    app = sqlite_hospital.app
    iid = _incident(sqlite_hospital, cfg)
    camp = notify.create_campaign(app, iid, "app,sms,post,phone", actor="dpo", cfg=cfg)
    app_t = MockTransport("app", fail={"P0000001"})
    sms_t = MockTransport("sms", fail={sqlite_hospital.rows[1]["phone"]})
    res = notify.dispatch(app, camp.campaign_id, {"app": app_t, "sms": sms_t}, actor="dpo", cfg=cfg)
    assert res.failed_attempts["app"] == cfg.max_attempts
    assert res.fell_back["app->sms"] == 1 and res.fell_back["sms->post"] == 1
    assert _notices(app, iid)["P0000001"] == ("app,sms,post,phone", "post", "queued")
    # returned mail moves the letter on to the call list
    with app.session() as s:
        d = s.scalars(select(Delivery).where(Delivery.state == "sent")).first()
        mid = d.message_id
    out = notify.record_receipt(app, mid, "returned", actor="mailroom", cfg=cfg)
    assert out["notice_state"] == "queued"
    with pytest.raises(Conflict):
        notify.record_receipt(app, mid, "delivered", actor="mailroom", cfg=cfg)
    with pytest.raises(UsageError):
        notify.record_receipt(app, mid, "lost", actor="mailroom", cfg=cfg)


def test_fifty_six_thousand_scale_path_is_batched(sqlite_hospital, cfg) -> None:
    """Small stand-in for the benchmark: every queued notice is dispatched in batches."""
    app = sqlite_hospital.app
    cfg = cfg.model_copy(update={"dispatch_batch": 3})
    iid = _incident(sqlite_hospital, cfg)
    camp = notify.create_campaign(app, iid, "app", actor="dpo", cfg=cfg)
    t = MockTransport("app")
    notify.dispatch(app, camp.campaign_id, {"app": t}, actor="dpo", cfg=cfg)
    assert len(t.sent) == camp.queued["app"] and t.calls == camp.queued["app"]
    st = notify.status(app, iid)
    assert st["by_channel"]["app"] == {"sent": camp.queued["app"]}
