"""Linkage quality on the five labelled dumps of the issue, and the source named first."""

from __future__ import annotations

import pytest

from phiguard.leaks.scan import scan
from tests.leaks.world import World, f1


def _run(app, world: World, name: str) -> dict:  # type: ignore[no-untyped-def]
    return scan(app, [world.dumps[name].path], actor="test")


@pytest.mark.parametrize("name", ["csv", "text", "xlsx", "json"])
def test_dumps_with_identifiers_link_exactly_the_leaked_patients(wapp, world, name):
    result = _run(wapp, world, name)
    found = {p["patient_id"] for p in result["affected_patients"]}
    dump = world.dumps[name]
    assert f1(found, dump.patients) >= 0.995
    assert found <= dump.patients  # no decoy, no stranger linked to anyone
    assert result["affected_count"] == len(found)
    assert result["unmatched_records"] >= dump.decoys
    assert result["attribution"], "the source must be named"
    top = result["attribution"][0]
    assert dump.source in (top["query_id"], top["account_id"])


def test_masked_hkids_are_linked_by_name_sex_and_birth_date(wapp, world):
    result = _run(wapp, world, "masked")
    found = {p["patient_id"] for p in result["affected_patients"]}
    dump = world.dumps["masked"]
    assert f1(found, dump.patients) >= 0.97
    assert result["identifiers"]["hkid_masked"] == len(dump.patients)
    assert result["identifiers"]["hkid_valid"] == 0
    assert all(0 < p["confidence"] < 1 for p in result["affected_patients"])
    assert result["attribution"][0]["query_id"] == dump.source


def test_exact_csv_reports_fields_identifiers_and_decoys(wapp, world):
    result = _run(wapp, world, "csv")
    dump = world.dumps["csv"]
    assert result["fields_exposed"] == ["name", "sex", "hkid", "hospital_no", "procedure"]
    ids = result["identifiers"]
    assert ids["hkid_valid"] == len(dump.patients) + dump.decoys
    assert ids["hkid_invalid"] == 1
    assert ids["hospital_no"] == len(dump.patients)
    assert result["unmatched_records"] == dump.decoys + 1
    top = result["attribution"][0]
    assert top["account_id"] == "vx-eng-07" and top["vendor_id"] == "V012"
    assert top["coverage"] == 1.0 and top["score"] > 0.9
    assert "returned 300 of the 300 leaked patients" in top["evidence"]
    first = result["affected_patients"][0]
    assert first["confidence"] == 1.0 and first["matched_on"][0] == "hkid"
    assert {"hospital_no", "name_en", "sex"} <= set(first["matched_on"])


def test_slow_exfiltration_is_pinned_on_the_account_not_one_query(wapp, world):
    result = _run(wapp, world, "json")
    top = result["attribution"][0]
    assert top["account_id"] == "vx-eng-09" and top["query_id"] is None
    assert top["vendor_id"] == "V020"
    assert "over 10 queries" in top["evidence"]
