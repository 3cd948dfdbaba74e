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


@pytest.mark.spark
def test_spark_linkage_leaves_nothing_on_disk(sqlite_app, tmp_path):
    """Splink's default on Spark checkpoints its tables as Parquet (pairs of patient ids and
    their scores: who is in the leak); phiguard keeps them in executor memory, and no name or
    date of birth lands in the home."""
    import csv
    import random

    from phiguard.leaks.splink_db import spark_session
    from tests.leaks.pmi import import_pmi, make_people, mask

    people = make_people(30)
    import_pmi(sqlite_app, tmp_path, people)
    rng = random.Random(8)
    dump = tmp_path / "masked.csv"
    with dump.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "sex", "hkid", "dob"])
        for p in people[:10]:
            w.writerow([p.name_en, p.sex, mask(p.hkid, rng), p.dob])
    checkpoints = tmp_path / "checkpoints"
    spark_session(sqlite_app.settings).sparkContext.setCheckpointDir(str(checkpoints))
    result = scan(sqlite_app, [dump], actor="t", engine="spark")
    assert result["affected_count"] == 10
    assert [f for f in checkpoints.rglob("*") if f.is_file()] == []
    needles = [n.encode() for p in people[:10] for n in (p.name_en, p.dob)]
    for f in sqlite_app.home.root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(n in data for n in needles), f"plaintext in {f}"
