"""The anomaly score per account-day, and how it combines with rule hits into an alert score.

``robust`` (default): for each feature, a robust z-score of ``log1p(value)`` against the
account's own days (median and scaled MAD) and against its peer group (same role and
department); a day is unusual only if it is unusual both for the account and for its peers
(the smaller of the two z-scores counts). The day's score is ``1 - 2^(-z/3)`` of its most
unusual feature: z = 3 → 0.5, z = 9 → 0.88, z = 20 → 0.99. It is explainable — the reason
names the feature and the usual value — which an investigator needs and a forest does not give.

``iforest``: scikit-learn's IsolationForest over the same log features (random_state fixed,
so both engines' identical features give identical scores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from phiguard.detection.features import FEATURES, LABELS
from phiguard.detection.rules.base import Hit, num
from phiguard.detection.settings import DetectionSettings

MAD_SCALE = 1.4826
MAD_FLOOR = 0.25  # in log1p units: a change by a factor < ~1.3 is never unusual on its own


@dataclass(frozen=True)
class DayScore:
    account_id: str
    dayno: int
    score: float
    reason: str
    first_us: int
    last_us: int
    n_patients: int
    vendor_id: str | None
    unexplained_share: float = 0.0


def _z(x: pd.Series, med: pd.Series, mad: pd.Series) -> pd.Series:
    return (x - med) / np.maximum(mad * MAD_SCALE, MAD_FLOOR)


def robust(df: pd.DataFrame, p: DetectionSettings) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Per row: the score, the most unusual feature, and per-feature usual values."""
    logs = np.log1p(df[list(FEATURES)].astype(float))
    peer_key = [df["role"].fillna("?"), df["department"].fillna("?")]
    own_days = df.groupby("account_id")["dayno"].transform("count")
    z_best = pd.DataFrame(index=df.index)
    usual = pd.DataFrame(index=df.index)
    for f in FEATURES:
        x = logs[f]
        g_own = x.groupby(df["account_id"])
        own_med = g_own.transform("median")
        own_mad = (x - own_med).abs().groupby(df["account_id"]).transform("median")
        g_peer = x.groupby(peer_key)
        peer_med = g_peer.transform("median")
        peer_mad = (x - peer_med).abs().groupby(peer_key).transform("median")
        z_own = _z(x, own_med, own_mad)
        z_peer = _z(x, peer_med, peer_mad)
        has_own = own_days >= p.daily_min_history_days
        z_best[f] = np.where(has_own, np.minimum(z_own, z_peer), z_peer)
        usual[f] = np.expm1(np.where(has_own, own_med, peer_med))
    z_max = z_best.clip(lower=0).max(axis=1)
    top = z_best.idxmax(axis=1)
    score = 1 - np.power(2.0, -z_max / 3.0)
    return score, top, usual


def iforest(df: pd.DataFrame) -> pd.Series:
    from sklearn.ensemble import IsolationForest

    x = np.log1p(df[list(FEATURES)].astype(float).to_numpy())
    if len(x) < 8:
        return pd.Series(0.0, index=df.index)
    model = IsolationForest(n_estimators=200, random_state=0, contamination="auto")
    model.fit(x)
    s = -model.score_samples(x)  # the paper's anomaly score, ~0.5 for ordinary points
    return pd.Series(np.clip((s - 0.5) * 2.0, 0.0, 1.0), index=df.index)


def score_days(
    features: pa.Table | list[dict[str, Any]] | None, p: DetectionSettings, report_dayno: int
) -> dict[tuple[str, int], DayScore]:
    """Anomaly scores for the account-days of the report window."""
    if features is None or len(features) == 0:
        return {}
    df = features.to_pandas() if isinstance(features, pa.Table) else pd.DataFrame(features)
    score, top, usual = robust(df, p)
    if p.anomaly_method == "iforest":
        score = iforest(df)
    out: dict[tuple[str, int], DayScore] = {}
    for i in df.index[df["dayno"] >= report_dayno]:
        row = df.loc[i]
        f = top[i]
        value = int(row[f])
        reason = (
            f"an unusual day for this account: {num(value)} {LABELS[f]} against a usual "
            f"{num(round(usual.at[i, f]))}"
        )
        out[(row["account_id"], int(row["dayno"]))] = DayScore(
            row["account_id"],
            int(row["dayno"]),
            round(float(score[i]), 4),
            reason,
            int(row["first_us"]),
            int(row["last_us"]),
            int(row["n_patients"]),
            None if pd.isna(row["vendor_id"]) else row["vendor_id"],
            int(row["n_unexplained"]) / max(int(row["n_patients"]), 1),
        )
    return out


def anomaly_hits(days: dict[tuple[str, int], DayScore], p: DetectionSettings) -> list[Hit]:
    """Days unusual enough to be worth a look even though no rule fired (low severity).

    Explanation-based filtering applies here too: a day whose patients are (nearly) all
    explained by encounters or grants is busy, not suspicious."""
    if p.anomaly_alert >= 1:
        return []
    floor = 1.0 - p.explained_share_benign
    return [
        Hit(
            "anomaly",
            "low",
            d.account_id,
            d.first_us,
            d.last_us,
            d.n_patients,
            [d.reason],
            [],
            d.account_id,
            d.vendor_id,
            score=d.score,
            dayno=d.dayno,
        )
        for d in days.values()
        if d.score >= p.anomaly_alert and d.unexplained_share > floor
    ]


def combine(rule_scores: list[float], anomaly: float, weight: float) -> float:
    """Noisy-OR of the rule hits, lifted (never lowered) by the anomaly score."""
    miss = math.prod(1.0 - s for s in rule_scores) if rule_scores else 1.0
    score = 1.0 - miss * (1.0 - weight * anomaly)
    return round(min(max(score, 0.0), 0.999), 3)
