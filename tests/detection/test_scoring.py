"""The anomaly score per account-day and how it lifts an alert's score."""

from __future__ import annotations

from typing import Any

from phiguard.detection.features import FEATURES
from phiguard.detection.scoring import anomaly_hits, combine, score_days
from phiguard.detection.settings import DetectionSettings


def days(
    volumes: list[int], account: str = "a1", role: str = "nurse", unexplained: int = 0
) -> list[dict[str, Any]]:
    rows = []
    for i, v in enumerate(volumes):
        row = {f: 0 for f in FEATURES}
        row.update(
            account_id=account,
            dayno=20000 + i,
            day=None,
            first_us=i,
            last_us=i + 1,
            role=role,
            department="MED",
            vendor_id=None,
            n_events=v * 2,
            n_patients=v,
            n_unexplained=unexplained if i == len(volumes) - 1 else 0,
            n_ips=1,
        )
        rows.append(row)
    return rows


def test_a_huge_day_scores_near_one_and_ordinary_days_low() -> None:
    p = DetectionSettings()
    feats = days([20, 22, 19, 21, 20, 23, 2000], unexplained=1990) + days(
        [25, 24, 26, 25, 27, 24, 25], account="a2"
    )
    scored = score_days(feats, p, report_dayno=0)
    assert scored[("a1", 20006)].score > 0.97
    assert (
        "2,000 distinct patients against a usual 21" in scored[("a1", 20006)].reason
        or "unexplained" in scored[("a1", 20006)].reason
    )
    assert all(s.score < 0.7 for k, s in scored.items() if k != ("a1", 20006))
    hits = anomaly_hits(scored, p)
    assert [h.subject for h in hits] == ["a1"] and hits[0].severity == "low"


def test_an_explained_busy_day_is_not_an_anomaly_alert() -> None:
    p = DetectionSettings()
    scored = score_days(days([20, 22, 19, 21, 20, 23, 400]), p, report_dayno=0)
    assert scored[("a1", 20006)].score > 0.9  # unusual…
    assert anomaly_hits(scored, p) == []  # …but every patient is explained


def test_isolation_forest_is_deterministic_and_bounded() -> None:
    p = DetectionSettings(anomaly_method="iforest")
    feats = [
        r
        for i in range(12)
        for r in days([20 + i % 3] * 6 + [20 + (i == 0) * 3000], account=f"a{i}")
    ]
    one, two = score_days(feats, p, 0), score_days(feats, p, 0)
    assert {k: v.score for k, v in one.items()} == {k: v.score for k, v in two.items()}
    assert all(0 <= v.score <= 1 for v in one.values())
    assert one[("a0", 20006)].score == max(v.score for v in one.values())


def test_combine_is_a_bounded_noisy_or_lifted_by_anomaly() -> None:
    assert combine([0.95], 0.0, 0.3) == 0.95
    assert combine([0.95], 1.0, 0.3) > 0.95
    assert combine([0.8, 0.8], 0.0, 0.3) > combine([0.8], 0.0, 0.3)
    assert combine([0.99, 0.99, 0.99], 1.0, 1.0) <= 0.999
    assert combine([], 0.0, 0.3) == 0.0
