"""The same rule pack on Apache Spark (local[2], loopback only) and on DuckDB, over the same
generated hospital, gives identical alerts: same subjects, rules, severities, scores, counts,
time spans, reasons and patient samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phiguard.detection.alerts import summarise
from phiguard.detection.pack import PackResult, Window
from phiguard.detection.service import drafts_for
from phiguard.detection.snapshot import Reference
from tests.detection import world as W
from tests.detection.conftest import SINCE, assert_same_results, run_world

# Small data: Spark's code generation and adaptive planning cost more than they save.
LOCAL_SMALL = (
    "spark.sql.shuffle.partitions=1;spark.sql.codegen.wholeStage=false;"
    "spark.sql.adaptive.enabled=false;spark.sql.codegen.factoryMode=NO_CODEGEN"
)


def _alerts(result: PackResult) -> list[dict[str, Any]]:
    p = W.settings()
    out = []
    for d in drafts_for(result, p, Window(SINCE, None, p.baseline_days)):
        s = summarise(d.hits, d.anomaly, p)
        out.append(
            {
                "subject": d.subject,
                "first_us": d.first_us,
                "last_us": d.last_us,
                "rules": sorted(d.hits),
                **{
                    k: s[k]
                    for k in ("rule", "severity", "score", "patient_count", "reasons", "sample")
                },
            }
        )
    return out


@pytest.mark.spark
def test_spark_and_duckdb_raise_identical_alerts(
    world_dir: Path, reference: Reference, duck_result: PackResult
) -> None:
    spark = run_world("spark", world_dir, reference, spark_conf=LOCAL_SMALL)
    assert_same_results(spark, duck_result)
    duck_alerts = _alerts(duck_result)
    assert _alerts(spark) == duck_alerts
    assert {a["subject"] for a in duck_alerts} >= set(W.PLANTED.values())
