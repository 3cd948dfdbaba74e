"""Quality on the generator's labelled hospital: every planted scenario found at the severity
its label expects, no high or critical alert on a decoy, ≥ 97 % of benign accesses explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phiguard.crypto.blind import BlindIndex
from phiguard.detection.engines import open_engine
from phiguard.detection.explain import benign_report
from phiguard.detection.pack import Window, run_pack
from phiguard.detection.quality import evaluate, planted_spans
from phiguard.detection.service import drafts_for
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import from_spec_dir
from phiguard.settings import Settings


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from phiguard.demo.generator import generate

    out = tmp_path_factory.mktemp("gen") / "hospital"
    generate(out, patients=5_000, days=35, seed=3)
    return out


def test_generated_hospital_quality(generated: Path) -> None:
    labels = json.loads((generated / "labels.json").read_text())
    p = DetectionSettings()
    ref = from_spec_dir(generated, BlindIndex(b"\x02" * 32))
    window = Window(None, None, p.baseline_days)
    eng = open_engine("duckdb", settings=Settings(), detect=p)
    try:
        result = run_pack(eng, ref, p, window, events_uri=str(generated / "events.parquet"))
        benign = benign_report(eng, p, window, planted_spans(labels))
    finally:
        eng.close()
    q = evaluate(drafts_for(result, p, window), labels, p)
    kinds = {s["kind"] for s in labels["scenarios"] if not s["decoy"]}
    assert {
        "bulk_export",
        "vip_snooping",
        "coworker_snooping",
        "family_snooping",
        "self_access",
        "after_contract_end",
        "after_grant_expiry",
        "dormant_reactivated",
        "slow_exfiltration",
    } <= kinds
    assert q.missed == [], q.as_dict()
    assert q.decoys_alerted == [], q.as_dict()
    assert len(q.decoys_ok) == sum(1 for s in labels["scenarios"] if s["decoy"])
    assert benign["explained_share"] >= 0.97, benign
