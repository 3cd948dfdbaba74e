"""Fuzzy linkage on Apache Spark (Splink's Spark backend, local[2], loopback only) links the
same masked records to the same patients, with the same confidences, as on DuckDB."""

from __future__ import annotations

import pytest

from phiguard.errors import UsageError
from phiguard.leaks.scan import scan
from tests.leaks.world import f1


def _links(result: dict) -> dict[str, tuple[float, list[str]]]:  # type: ignore[type-arg]
    return {
        p["patient_id"]: (p["confidence"], p["matched_on"]) for p in result["affected_patients"]
    }


@pytest.mark.spark
def test_spark_and_duckdb_link_the_masked_dump_to_the_same_patients(wapp, world):
    dump = world.dumps["masked"]
    duck = scan(wapp, [dump.path], actor="test", engine="duckdb")
    spark = scan(wapp, [dump.path], actor="test", engine="spark")
    on_duck, on_spark = _links(duck), _links(spark)
    assert f1(set(on_duck), dump.patients) >= 0.97
    assert set(on_spark) == set(on_duck)
    for pid, (conf, matched_on) in on_duck.items():
        assert on_spark[pid][0] == pytest.approx(conf, abs=1e-4)
        assert on_spark[pid][1] == matched_on
    assert spark["unmatched_records"] == duck["unmatched_records"]
    assert spark["attribution"][0]["query_id"] == dump.source


def test_an_unknown_engine_is_refused_with_a_clear_error(wapp, world):
    with pytest.raises(UsageError, match="unknown linkage engine 'hive'"):
        scan(wapp, [world.dumps["masked"].path], actor="test", engine="hive")
