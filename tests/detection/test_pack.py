"""The rule pack on DuckDB over the hand-made hospital: every planted scenario is found with
the rule meant for it, decoys stay quiet, and the reasons say what an investigator needs."""

from __future__ import annotations

from phiguard.detection.alerts import Draft, summarise
from phiguard.detection.pack import PackResult, Window
from phiguard.detection.rules import RANK
from phiguard.detection.service import drafts_for
from tests.detection import world as W
from tests.detection.conftest import SINCE


def _drafts(result: PackResult) -> list[tuple[Draft, dict]]:  # type: ignore[type-arg]
    p = W.settings()
    drafts = drafts_for(result, p, Window(SINCE, None, p.baseline_days))
    return [(d, summarise(d.hits, d.anomaly, p)) for d in drafts]


def test_every_planted_scenario_is_found_by_its_rule(duck_result: PackResult) -> None:
    alerts = _drafts(duck_result)
    for rule, subject in W.PLANTED.items():
        assert any(d.subject == subject and rule in d.hits for d, _ in alerts), (rule, subject)


def test_decoys_raise_nothing_high(duck_result: PackResult) -> None:
    for d, s in _drafts(duck_result):
        if d.subject in W.DECOYS:
            assert RANK[s["severity"]] <= RANK["low"], (d.subject, s)


def test_seed_export_is_one_critical_alert_with_readable_reasons(duck_result: PackResult) -> None:
    seed = [
        (d, s)
        for d, s in _drafts(duck_result)
        if d.subject == "vx-eng-07" and s["severity"] == "critical"
    ]
    assert len(seed) == 1
    d, s = seed[0]
    assert {"bulk_export", "outside_grant", "daily_volume", "rare_hour"} <= set(d.hits)
    assert s["rule"] == "bulk_export" and s["patient_count"] == 1500
    text = " ".join(s["reasons"])
    assert "exported 1,500 patient records from KEC on 2026-04-03 between 01:12 and 01:36" in text
    assert "the grant covers HKWC only, 50 rows at most" in text
    assert "this account's previous daily maximum was 5" in text
    assert s["sample"] == sorted(s["sample"]) and len(s["sample"]) == 5
    assert 0.9 < s["score"] <= 1


def test_repeated_hits_of_one_account_are_one_alert(duck_result: PackResult) -> None:
    subjects = [d.subject for d, s in _drafts(duck_result) if RANK[s["severity"]] >= RANK["high"]]
    assert len(subjects) == len(set(subjects))


def test_vendor_after_contract_end_names_the_date(duck_result: PackResult) -> None:
    _, s = next((d, s) for d, s in _drafts(duck_result) if d.subject == "vy-01")
    assert s["rule"] == "after_contract_end"
    assert "whose contract ended on 2026-03-20" in s["reasons"][0]


def test_source_gap_counts_the_missing_events(duck_result: PackResult) -> None:
    _, s = next((d, s) for d, s in _drafts(duck_result) if d.subject == "source:CMS")
    assert "missing 12 events (sequence numbers 5,000 to 5,011)" in s["reasons"][0]


def test_explanations_cover_ordinary_work(duck_result: PackResult) -> None:
    ex = duck_result.explain
    assert ex["events"] > 10_000
    # everything but the planted accesses is explained in this hospital
    assert ex["explained_share"] > 0.85
    assert (
        abs(
            ex["by_account_encounter"]
            + ex["by_department_encounter"]
            + ex["by_grant"]
            - ex["explained_share"]
        )
        < 1e-3
    )


def test_since_reports_only_later_hits_but_reads_history_for_baselines(
    world_dir, reference
) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime

    from phiguard.clock import HKT
    from tests.detection.conftest import run_world

    since = datetime(2026, 4, 3, tzinfo=HKT)
    result = run_world("duckdb", world_dir, reference, since=since)
    start = Window(since, None, 45).report_us
    assert result.hits and all(h.last_us >= start for h in result.hits)
    assert "vy-01" not in {h.subject for h in result.hits}  # 2026-03-26: before --since
    bulk = next(h for h in result.hits if h.rule == "bulk_export")
    assert "previous daily maximum was 5" in bulk.reasons[0]  # history before --since
    assert any(h.rule == "dormant_reactivated" and h.subject == "d06" for h in result.hits)
