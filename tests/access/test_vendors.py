"""Vendors: the kill switch, contracts, assessments and training."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from phiguard.access import assessments, breakglass, grants, vendors
from phiguard.access.lifecycle import sweep
from phiguard.access.pdp import decide
from phiguard.errors import Conflict, NotFound, UsageError
from phiguard.storage.models import Account, Grant
from tests.access.conftest import World

ALL_YES = {q.id: "yes" for q in assessments.questionnaire()[1]}


def test_suspend_revokes_every_grant_and_disables_every_account_at_once(app, world, audit):
    world.contractor("c2")
    world.vendor("V2")
    world.contractor("other", "V2")
    g1 = world.grant("c1")
    g2 = world.grant("c2", cluster="KWC")
    g3 = world.grant("other")
    pending = grants.request_access(
        app,
        account_id="c1",
        cluster="NTEC",
        fields="name",
        actions="read",
        max_rows=5,
        purpose="HOPERAT",
        ticket="T",
        reason="pending maintenance",
        duration="1h",
    )
    res = vendors.suspend(app, "V1", reason="suspected leak", actor="m1")
    assert sorted(res.grants_revoked) == sorted([g1, g2])
    assert res.accounts_disabled == ["c1", "c2"]
    assert res.requests_cancelled == [pending.request_id]
    with app.session() as s:
        assert {g.grant_id: g.status for g in s.scalars(select(Grant))} == {
            g1: "revoked",
            g2: "revoked",
            g3: "active",
        }
        assert s.get(Account, "c1").status == "disabled"
        assert s.get(Account, "other").status == "active"
    for account in ("c1", "c2"):
        res_d = decide(app, account=account, action="read", cluster="KWC")
        assert res_d["decision"] == "deny"
        assert "vendor V1 is suspended" in res_d["reasons"]
    assert decide(app, account="other", action="read", patient="P1")["decision"] == "allow"
    tags = audit.tags()
    assert tags.count("access:grant:revoked") == 2
    assert tags.count("access:account:disabled") == 2
    assert "access:vendor:suspended" in tags


def test_resume_restores_nothing(sqlite_app):
    w = World(sqlite_app).standard()
    w.grant()
    vendors.suspend(sqlite_app, "V1", reason="leak", actor="m1")
    with pytest.raises(Conflict, match="account c1 is disabled"):
        w.grant()
    vendors.resume(sqlite_app, "V1", reason="investigation closed", actor="m1")
    with pytest.raises(Conflict, match="not suspended"):
        vendors.resume(sqlite_app, "V1", reason="again", actor="m1")
    res = decide(sqlite_app, account="c1", action="read", patient="P1")
    assert res["decision"] == "deny" and "account c1 is disabled" in res["reasons"]
    assert [g["status"] for g in grants.list_grants(sqlite_app, account_id="c1")] == ["revoked"]
    vendors.enable_account(sqlite_app, "c1", reason="cleared by HR", actor="m2")
    res = decide(sqlite_app, account="c1", action="read", patient="P1")
    assert res["decision"] == "deny"
    assert any("it was revoked (vendor V1 suspended: leak)" in r for r in res["reasons"])
    w.grant()  # a new request goes through again
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"


def test_suspend_unknown_vendor_is_a_clear_error(sqlite_app):
    World(sqlite_app).standard()
    with pytest.raises(NotFound, match="unknown vendor"):
        vendors.suspend(sqlite_app, "V404", reason="x", actor="m1")
    with pytest.raises(UsageError, match="reason"):
        vendors.suspend(sqlite_app, "V1", reason=" ", actor="m1")


def test_suspend_ends_break_glass(sqlite_app):
    w = World(sqlite_app).standard()
    bg = breakglass.start(sqlite_app, "c1", reason="production outage on PAS", cluster="KEC")
    res = vendors.suspend(sqlite_app, "V1", reason="leak", actor="m1")
    assert res.breakglass_ended == [bg.session_id]
    assert w  # world built


def test_contract_end_denies_and_the_sweep_revokes(sqlite_app, clock):
    w = World(sqlite_app)
    w.vendor("V1", end=w.today)  # contract ends today (inclusive)
    w.contractor("c1")
    w.account("m1", role="it_manager")
    w.patient("P1")
    gid = w.grant(duration="48h", approvers=("m1",))
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"
    clock.advance(timedelta(days=1))
    res = decide(sqlite_app, account="c1", action="read", patient="P1")
    assert res["decision"] == "deny"
    assert any("contract ended" in r for r in res["reasons"])
    report = sweep(sqlite_app)
    assert gid in report.revoked and "contract ended" in report.revoked[gid]


def test_training_expiry_denies_and_revokes(sqlite_app, clock):
    w = World(sqlite_app)
    w.vendor("V1")
    w.account("c1", employer="V1", role="vendor_engineer", cluster="ALL")
    w.account("m1", role="it_manager")
    w.patient("P1")
    assessments.record_training(
        sqlite_app, "c1", completed_on=w.today - timedelta(days=364), expires_on=w.today, actor="hr"
    )
    gid = w.grant(duration="72h", approvers=("m1",))
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"
    clock.advance(timedelta(days=1))
    res = decide(sqlite_app, account="c1", action="read", patient="P1")
    assert res["decision"] == "deny"
    assert any("privacy training expired" in r for r in res["reasons"])
    assert gid in sweep(sqlite_app).revoked


def test_contractor_without_training_is_denied(sqlite_app):
    w = World(sqlite_app).standard()
    w.contractor("c9", trained=False)
    w.grant("c9")
    res = decide(sqlite_app, account="c9", action="read", patient="P1")
    assert res["decision"] == "deny"
    assert "c9 has no privacy training on record" in res["reasons"]


def test_contracts_reject_malformed_and_overlapping_windows(sqlite_app):
    World(sqlite_app).standard()
    today = sqlite_app.clock.now().date()
    with pytest.raises(UsageError, match="before its start"):
        vendors.record_contract(
            sqlite_app,
            "V1",
            contract_id="C2",
            start=today,
            end=today - timedelta(days=1),
            dpa_signed=True,
            actor="m1",
        )
    with pytest.raises(Conflict, match="overlaps contract C-V1"):
        vendors.record_contract(
            sqlite_app,
            "V1",
            contract_id="C2",
            start=today,
            end=today + timedelta(days=400),
            dpa_signed=True,
            actor="m1",
        )
    renewal = vendors.record_contract(
        sqlite_app,
        "V1",
        contract_id="C2",
        start=today + timedelta(days=101),
        end=today + timedelta(days=465),
        dpa_signed=True,
        actor="m1",
    )
    assert renewal.contract_id == "C2"


def test_no_dpa_denies(sqlite_app):
    w = World(sqlite_app)
    w.vendor("V1", dpa=False)
    w.contractor("c1")
    w.account("m1", role="it_manager")
    w.patient("P1")
    w.grant(approvers=("m1",))
    res = decide(sqlite_app, account="c1", action="read", patient="P1")
    assert res["decision"] == "deny"
    assert any("data-processing agreement" in r for r in res["reasons"])


def test_assessment_score_is_weighted_and_na_is_left_out():
    answers = dict(ALL_YES)
    assert assessments.score(answers) == 100.0
    answers["dpa"] = "no"  # weight 10 of 80
    assert assessments.score(answers) == pytest.approx(87.5)
    answers["dpa"] = "na"
    assert assessments.score(answers) == 100.0
    answers["mfa"] = "partial"  # 4 of 70 lost
    assert assessments.score(answers) == pytest.approx(94.3)


@pytest.mark.parametrize(
    "answers, match",
    [
        ({**ALL_YES, "bogus": "yes"}, "unknown question"),
        ({k: v for k, v in ALL_YES.items() if k != "mfa"}, "not answered"),
        ({**ALL_YES, "mfa": "maybe"}, "not one of"),
        ({k: "na" for k in ALL_YES}, "nothing to score"),
    ],
)
def test_bad_questionnaires_are_refused(answers, match):
    with pytest.raises(UsageError, match=match):
        assessments.score(answers)


def test_failed_assessment_and_overdue_findings_lapse_access(sqlite_app, clock):
    w = World(sqlite_app)
    w.vendor("V1", assessed=date(2020, 1, 1))  # old assessment long lapsed
    w.contractor("c1")
    w.account("m1", role="it_manager")
    w.patient("P1")
    w.grant(duration="168h", approvers=("m1",))
    res = decide(sqlite_app, account="c1", action="read", patient="P1")
    assert any("security assessment lapsed" in r for r in res["reasons"])
    failing = {**ALL_YES, **{k: "no" for k in ("dpa", "mfa", "pam", "least_privilege")}}
    a = assessments.record_assessment(
        sqlite_app, "V1", answers=failing, assessor="m1", completed_on=w.today
    )
    assert not a.passed
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "deny"
    passed = assessments.record_assessment(
        sqlite_app,
        "V1",
        answers=ALL_YES,
        assessor="m1",
        completed_on=w.today,
        findings=[
            {
                "severity": "high",
                "title": "shared admin password on jump host",
                "due": str(w.today + timedelta(days=2)),
            },
            {"severity": "low", "title": "policy wording", "due": ""},
        ],
    )
    assert passed.passed and passed.score == 100.0
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"
    clock.advance(timedelta(days=3))  # the high finding is now overdue
    res = decide(sqlite_app, account="c1", action="read", patient="P1")
    assert res["decision"] == "deny"
    status = assessments.assessment_status(sqlite_app, "V1")
    high = next(f for f in status["findings"] if f["severity"] == "high")
    assert high["overdue"] and not status["holds"]
    assessments.close_finding(sqlite_app, high["finding_id"], actor="m1", note="rotated")
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"


def test_training_records_reject_malformed_windows(sqlite_app):
    World(sqlite_app).standard()
    today = sqlite_app.clock.now().date()
    with pytest.raises(UsageError, match="not after its completion"):
        assessments.record_training(
            sqlite_app, "c1", completed_on=today, expires_on=today, actor="hr"
        )
    with pytest.raises(NotFound):
        assessments.record_training(
            sqlite_app,
            "nobody",
            completed_on=today,
            expires_on=today + timedelta(days=1),
            actor="hr",
        )


def test_vendor_summary_and_listing(sqlite_app):
    w = World(sqlite_app).standard()
    w.grant()
    info = vendors.vendor_summary(sqlite_app, "V1")
    assert info["status"] == "active" and info["contracts"][0]["current"]
    assert info["assessment"]["holds"]
    assert [g["status"] for g in info["grants"]] == ["active"]
    assert vendors.list_vendors(sqlite_app)[0]["under_contract"]
    with pytest.raises(Conflict):
        vendors.register_vendor(sqlite_app, "V1", "dup", "m1")
    v = vendors.register_vendor(sqlite_app, "V7", "New Co", "m1")
    assert v.status == "active"
