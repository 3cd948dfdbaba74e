"""Detection quality on labelled synthetic data (``labels.json`` of the generator).

A planted scenario is *found* when an alert on its account overlaps its time span with at
least the severity the label expects. A decoy is *respected* when no alert on its account in
its span is high or critical. Benign work is everything but the planted scenarios' accesses;
the share of it that encounters, departments or grants explain is the explanation figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phiguard.clock import parse_ts
from phiguard.detection.alerts import Draft, summarise
from phiguard.detection.rules import RANK
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import to_us


@dataclass
class Quality:
    found: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    decoys_ok: list[str] = field(default_factory=list)
    decoys_alerted: list[str] = field(default_factory=list)
    alerts: dict[str, int] = field(default_factory=dict)  # per severity
    high_or_critical_unlabelled: int = 0
    benign_explained: float | None = None

    @property
    def recall(self) -> float:
        n = len(self.found) + len(self.missed)
        return len(self.found) / n if n else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "missed": self.missed,
            "decoys_ok": self.decoys_ok,
            "decoys_alerted": self.decoys_alerted,
            "alerts": self.alerts,
            "high_or_critical_unlabelled": self.high_or_critical_unlabelled,
            "recall": round(self.recall, 4),
            "benign_explained": self.benign_explained,
        }


def span(s: dict[str, Any]) -> tuple[int, int]:
    return to_us(parse_ts(s["first_ts"])) or 0, to_us(parse_ts(s["last_ts"])) or 0


def evaluate(drafts: list[Draft], labels: dict[str, Any], p: DetectionSettings) -> Quality:
    q = Quality(alerts={s: 0 for s in RANK})
    summaries = [(d, summarise(d.hits, d.anomaly, p)) for d in drafts]
    labelled: set[int] = set()
    for sc in labels.get("scenarios", []):
        f, to = span(sc)
        near = [
            (i, d, s)
            for i, (d, s) in enumerate(summaries)
            if d.subject == sc["account_id"] and d.first_us <= to and d.last_us >= f
        ]
        labelled |= {i for i, _, _ in near}
        if sc["decoy"]:
            bad = [s for _, _, s in near if RANK[s["severity"]] >= RANK["high"]]
            (q.decoys_alerted if bad else q.decoys_ok).append(sc["id"])
        else:
            need = RANK[sc.get("expected_min_severity") or "low"]
            ok = any(RANK[s["severity"]] >= need for _, _, s in near)
            (q.found if ok else q.missed).append(sc["id"])
    for i, (_, s) in enumerate(summaries):
        q.alerts[s["severity"]] += 1
        if i not in labelled and RANK[s["severity"]] >= RANK["high"]:
            q.high_or_critical_unlabelled += 1
    return q


def planted_spans(labels: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(s["account_id"], *span(s)) for s in labels.get("scenarios", []) if not s["decoy"]]
