"""The policy decision point: answers, reasons, obligations, engines, policies, caching."""

from __future__ import annotations

from datetime import timedelta

import pytest

from phiguard.access import grants, vendors
from phiguard.access.pdp import decide, pdp_for
from phiguard.access.policy import load
from phiguard.app import App
from phiguard.clock import FixedClock
from phiguard.errors import UsageError
from tests.access.conftest import World, configure


def test_allow_carries_obligations_and_deny_names_every_gap(sqlite_app, sqlite_world, sqlite_audit):
    app, world, audit = sqlite_app, sqlite_world, sqlite_audit
    gid = world.grant(fields="name,sex,hospital_no", actions="read,search", max_rows=20)
    ok = decide(app, account="c1", action="read", patient="P1")
    assert ok["decision"] == "allow"
    assert {"type": "row_limit", "max_rows": 20} in ok["obligations"]
    mask = next(o for o in ok["obligations"] if o["type"] == "mask_fields")
    assert "hkid" in mask["fields"] and "procedure" in mask["fields"]
    assert "name" not in mask["fields"]
    grant_ob = next(o for o in ok["obligations"] if o["type"] == "grant")
    assert grant_ob["grant_id"] == gid and grant_ob["purpose"] == "HOPERAT"
    # the April 2026 export: outside actions, fields and rows at once
    no = decide(
        app,
        account="c1",
        action="export",
        cluster="KEC",
        rows=56_012,
        fields="name,sex,hkid,hospital_no,procedure",
        purpose="HOPERAT",
    )
    assert no == {
        "decision": "deny",
        "obligations": [],
        "reasons": [
            f"grant {gid} does not cover this: it does not allow export (only read, search); "
            "it does not include the field(s) hkid, procedure; it allows at most 20 rows and "
            "56,012 were asked"
        ],
    }
    decisions = [e for e in audit.entries if e["tag"] == "access:decision:made"]
    assert [d["decision"] for d in decisions] == ["allow", "deny"]
    assert decisions[1]["actor"] == "c1" and decisions[1]["rows"] == 56_012


def test_each_scope_dimension_denies(sqlite_app):
    w = World(sqlite_app).standard()
    w.grant()
    for kw, reason in [
        ({"patient": "P2"}, "it covers KEC, not KWC"),
        ({"patient": "P1", "fields": "name,dob"}, "it does not include the field(s) dob"),
        ({"patient": "P1", "purpose": "TREAT"}, "it is for purpose HOPERAT, not TREAT"),
        ({"cluster": "KEC", "rows": 21, "action": "search"}, "at most 20 rows and 21 were asked"),
        ({"patient": "P1", "action": "print"}, "it does not allow print"),
        ({}, "it covers KEC, not an unnamed cluster"),
    ]:
        args = {"account": "c1", "action": "read", **kw}
        res = decide(sqlite_app, **args)
        assert res["decision"] == "deny"
        assert reason in res["reasons"][0]


def test_stated_fields_within_the_grant_need_no_mask(sqlite_app):
    World(sqlite_app).standard().grant()
    res = decide(sqlite_app, account="c1", action="read", patient="P1", fields="name,sex")
    assert res["decision"] == "allow"
    assert not [o for o in res["obligations"] if o["type"] == "mask_fields"]


def test_unknown_account_and_patient_deny_bad_usage_raises(sqlite_app):
    World(sqlite_app).standard()
    assert decide(sqlite_app, account="nobody", action="read") == {
        "decision": "deny",
        "reasons": ["unknown account nobody"],
        "obligations": [],
    }
    assert decide(sqlite_app, account="c1", action="read", patient="P404")["reasons"] == [
        "unknown patient P404"
    ]
    res = decide(sqlite_app, account="c1", action="read", patient="P1", cluster="KWC")
    assert res["reasons"] == ["patient P1 is in KEC, not KWC"]
    for kw in (
        {"action": "delete"},
        {"action": "read", "fields": "na me"},
        {"action": "read", "rows": -1},
        {"action": "read", "purpose": "FUN"},
        {"action": "read", "cluster": "MARS"},
        {"action": "read", "at": "yesterday"},
    ):
        with pytest.raises((UsageError, ValueError)):
            decide(sqlite_app, account="c1", **kw)


def test_vip_records_are_forbidden_to_contractors_even_with_a_grant(sqlite_app):
    World(sqlite_app).standard().grant()
    res = decide(sqlite_app, account="c1", action="read", patient="VIP1")
    assert res["decision"] == "deny"
    assert res["reasons"] == ["patient VIP1 is restricted (VIP); contractors never see VIP records"]


def test_staff_baseline_covers_care_in_the_home_cluster_only(sqlite_app):
    World(sqlite_app).standard()
    assert (
        decide(sqlite_app, account="d1", action="read", patient="P1", purpose="TREAT")["decision"]
        == "allow"
    )
    for kw in (
        {"patient": "P2"},
        {"patient": "P1", "action": "export"},
        {"cluster": "KEC", "rows": 51},
        {"patient": "P1", "purpose": "HMARKT"},
    ):
        args = {"account": "d1", "action": "read", **kw}
        assert decide(sqlite_app, **args)["decision"] == "deny", kw
    # non-clinical staff have no baseline
    assert decide(sqlite_app, account="m1", action="read", patient="P1")["decision"] == "deny"


def test_time_is_injectable_per_decision(sqlite_app, clock):
    w = World(sqlite_app).standard()
    w.grant(duration="1h")
    later = (clock.now() + timedelta(hours=2)).isoformat()
    earlier = (clock.now() - timedelta(minutes=1)).isoformat()
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"
    res = decide(sqlite_app, account="c1", action="read", patient="P1", at=later)
    assert res["decision"] == "deny" and "ended at" in res["reasons"][0]
    res = decide(sqlite_app, account="c1", action="read", patient="P1", at=earlier)
    assert res["decision"] == "deny" and "starts at" in res["reasons"][0]


@pytest.mark.parametrize("engine", ["python", "cedar"])
def test_both_engines_give_the_same_answers(sqlite_app, engine):
    w = World(sqlite_app).standard()
    w.grant()
    configure(sqlite_app, engine=engine)
    assert pdp_for(sqlite_app).engine == engine
    cases = [
        ({"account": "c1", "action": "read", "patient": "P1"}, "allow"),
        ({"account": "c1", "action": "export", "cluster": "KEC", "rows": 9}, "deny"),
        ({"account": "c1", "action": "read", "patient": "VIP1"}, "deny"),
        ({"account": "d1", "action": "read", "patient": "P1"}, "allow"),
        ({"account": "d1", "action": "read", "patient": "P2"}, "deny"),
    ]
    for kw, want in cases:
        assert decide(sqlite_app, **kw)["decision"] == want, kw


def test_an_operator_forbid_overrides_a_grant_and_switches_to_cedar(sqlite_app):
    w = World(sqlite_app).standard()
    w.grant(actions="read,search,print")
    folder = sqlite_app.home.root / "policies"
    folder.mkdir()
    (folder / "no-print.cedar").write_text(
        '@id("no-contractor-print")\n@reason("contractors may not print")\n'
        'forbid (principal, action == Action::"print", resource)\n'
        'when { principal.kind == "contractor" };\n'
    )
    configure(sqlite_app)
    assert pdp_for(sqlite_app).engine == "cedar"
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"
    res = decide(sqlite_app, account="c1", action="print", patient="P1")
    assert res == {
        "decision": "deny",
        "obligations": [],
        "reasons": ["policy no-contractor-print: contractors may not print"],
    }


def test_an_operator_permit_is_honoured(sqlite_app):
    World(sqlite_app).standard()
    folder = sqlite_app.home.root / "policies"
    folder.mkdir()
    (folder / "audit.cedar").write_text(
        '@id("privacy-officer-search")\n'
        'permit (principal, action == Action::"search", resource)\n'
        'when { principal.role == "privacy_officer" && context.purpose == "HLEGAL" };\n'
    )
    configure(sqlite_app)
    res = decide(sqlite_app, account="m2", action="search", cluster="KEC", purpose="HLEGAL")
    assert res["decision"] == "allow"
    assert res["reasons"] == ["allowed by policy privacy-officer-search"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("permit (principal, action, resource) when { ;", "invalid Cedar policy"),
        ("permit (principal, action, resource);", "no @id"),
        ('@id("grant")\nforbid (principal, action, resource);', "also used"),
        (
            '@id("typo")\nforbid (principal, action, resource) when { principal.kynd == "x" };',
            "does not fit the schema",
        ),
        (
            '@id("types")\nforbid (principal, action, resource) when { context.rows == "many" };',
            "does not fit the schema",
        ),
    ],
)
def test_invalid_policies_are_refused_at_load(tmp_path, text, match):
    (tmp_path / "bad.cedar").write_text(text)
    with pytest.raises(UsageError, match=match):
        load(tmp_path)


def test_the_decision_point_refuses_to_run_on_invalid_policies(sqlite_app):
    folder = sqlite_app.home.root / "policies"
    folder.mkdir()
    (folder / "bad.cedar").write_text(
        '@id("x")\nforbid (principal, action, resource) when { principal.nope };'
    )
    configure(sqlite_app)
    World(sqlite_app).standard()
    with pytest.raises(UsageError, match="does not fit the schema"):
        decide(sqlite_app, account="c1", action="read")


def test_builtin_policies_validate():
    store = load(None)
    assert store.builtin_only
    assert {"grant", "staff-baseline", "break-glass"} <= set(store.policies)
    assert "vendor-suspended" in store.forbids


def test_a_change_in_another_process_is_seen(app, world):
    """Two App objects on one home stand for two processes (a server and the CLI)."""
    world.grant()
    configure(app, cache_check_seconds=0)
    assert decide(app, account="c1", action="read", patient="P1")["decision"] == "allow"
    other = App.open(app.settings, clock=FixedClock(app.clock.now()))
    try:
        vendors.suspend(other, "V1", reason="kill switch from the CLI", actor="m1")
    finally:
        other.close()
    res = decide(app, account="c1", action="read", patient="P1")
    assert res["decision"] == "deny" and "vendor V1 is suspended" in res["reasons"]


def test_a_change_in_this_process_is_seen_at_once(sqlite_app):
    w = World(sqlite_app).standard()
    gid = w.grant()
    configure(sqlite_app, cache_check_seconds=3600)
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "allow"
    grants.revoke(sqlite_app, gid, "m1", "done")
    assert decide(sqlite_app, account="c1", action="read", patient="P1")["decision"] == "deny"


def test_account_disabled_and_out_of_date(sqlite_app, clock):
    from datetime import date

    w = World(sqlite_app).standard()
    w.contractor("c3", active_to=date(2026, 4, 2))
    w.grant("c3", duration="48h")
    assert decide(sqlite_app, account="c3", action="read", patient="P1")["decision"] == "allow"
    clock.advance(timedelta(days=1))
    res = decide(sqlite_app, account="c3", action="read", patient="P1")
    assert any("valid only from" in r for r in res["reasons"])
