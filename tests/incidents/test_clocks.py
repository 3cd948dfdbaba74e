from __future__ import annotations

from datetime import UTC, datetime, timedelta

from phiguard.clock import HKT
from phiguard.incidents import cases, clocks
from phiguard.incidents.settings import IncidentSettings


def _open(h, cfg, **kw):
    return cases.open_from(h.app, actor="dpo", scan=h.scan(), cfg=cfg, **kw)


def test_deadlines_are_in_hong_kong_time(sqlite_hospital, clock) -> None:
    cfg = IncidentSettings(cap653_designated=True)
    clock.at = datetime(2026, 4, 3, 9, 0, tzinfo=HKT)
    aware = datetime(2026, 4, 2, 18, 0, tzinfo=UTC)  # 02:00 on 3 April in Hong Kong
    iid = _open(sqlite_hospital, cfg, aware_at=aware)
    c = cases.summary(sqlite_hospital.app, iid, cfg)["clocks"]
    assert c["pcpd"]["due"] == "2026-04-04T02:00+08:00"
    assert c["cap653"]["due"] == "2026-04-05T02:00+08:00"  # other incident: 48 h
    assert c["police"]["due"] == "2026-04-04T02:00+08:00"
    assert c["supplier"]["state"] == "pending"  # V012 was attributed
    assert c["pcpd"]["remaining_hours"] == 17.0


def test_cap653_serious_is_12_hours_and_off_when_not_designated(sqlite_hospital) -> None:
    on = IncidentSettings(cap653_designated=True)
    iid = _open(sqlite_hospital, on, serious=True)
    c = cases.summary(sqlite_hospital.app, iid, on)["clocks"]["cap653"]
    assert c["remaining_hours"] == 12.0 and "serious" in c["basis"]
    off = IncidentSettings(cap653_designated=False)
    iid2 = _open(sqlite_hospital, off)
    c2 = cases.summary(sqlite_hospital.app, iid2, off)["clocks"]["cap653"]
    assert c2["state"] == "not_applicable" and c2["due"] is None


def test_states_move_with_the_clock_and_reminders_fire_once(sqlite_hospital, clock) -> None:
    cfg = IncidentSettings(pcpd_target_hours=24, reminder_hours=2)
    app = sqlite_hospital.app
    iid = _open(sqlite_hospital, cfg)
    state = lambda: cases.summary(app, iid, cfg)["clocks"]["pcpd"]["state"]  # noqa: E731
    assert state() == "pending"
    with app.session() as s:
        assert clocks.reminders(s, app.clock.now(), cfg) == []
    clock.advance(timedelta(hours=22, minutes=30))
    assert state() == "due_soon"
    with app.session() as s:
        first = clocks.reminders(s, app.clock.now(), cfg)
    assert {(r.recipient, r.state) for r in first} >= {("pcpd", "due_soon")}
    assert "is due at" in first[0].text
    with app.session() as s:
        assert clocks.reminders(s, app.clock.now(), cfg) == []  # once per level
    clock.advance(timedelta(hours=2))
    assert state() == "overdue"
    with app.session() as s:
        assert any(
            r.recipient == "pcpd" and r.state == "overdue"
            for r in clocks.reminders(s, app.clock.now(), cfg)
        )
    cases.mark_notified(app, iid, "pcpd", actor="dpo", reference="PCPD-123")
    c = cases.summary(app, iid, cfg)["clocks"]["pcpd"]
    assert c["state"] == "done_late" and c["reference"] == "PCPD-123"


def test_notified_in_time_is_done_and_ticks_the_task(sqlite_hospital) -> None:
    cfg = IncidentSettings()
    app = sqlite_hospital.app
    iid = _open(sqlite_hospital, cfg)
    cases.mark_notified(app, iid, "police", actor="dpo", reference="RN-1")
    assert cases.summary(app, iid, cfg)["clocks"]["police"]["state"] == "done"
    with app.session() as s:
        from phiguard.incidents import playbook

        done = {t.key for t in playbook.tasks(s, iid) if t.status == "done"}
    assert "notify.police" in done
