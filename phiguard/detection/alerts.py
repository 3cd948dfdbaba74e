"""From hits to alerts: episodes, merging, alert ids, verdicts, suppression and accuracy.

* Hits of one subject (an account, or a log source) that lie within ``merge_gap_hours`` of each
  other are one *episode*: one alert, whatever the number of rules and days involved.
* An alert remembers, per rule, its best hit (``Alert.hits``); merging a later run into an
  existing alert replaces a rule's entry only with a more severe or larger one, so re-running
  ``detect`` over the same events changes nothing, and a live alert raised mid-export is
  completed, not duplicated, by the next batch run.
* A verdict closes an alert. ``false_positive`` and ``benign`` verdicts create suppressions:
  the same rule on the same subject stays quiet for ``suppress_days`` unless it grows past
  ``suppress_growth`` × what was judged. Verdicts also give the precision figures per rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from phiguard.audit.tags import Tag
from phiguard.detection.models import Alert, Suppression
from phiguard.detection.rules import RANK, RULE_NAMES, Hit
from phiguard.detection.scoring import DayScore, combine
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import from_us
from phiguard.errors import Conflict, NotFound, UsageError

if TYPE_CHECKING:
    from phiguard.app import App

VERDICTS = ("true_positive", "false_positive", "benign")
SUPPRESSING = frozenset({"false_positive", "benign"})
# Which rule names an episode when several share its top severity: the most specific first.
PRIORITY = (
    "bulk_export",
    "after_contract_end",
    "suspended_vendor",
    "account_expired",
    "unknown_account",
    "outside_grant",
    "slow_exfiltration",
    "vendor_volume",
    "daily_volume",
    "vip_no_relationship",
    "family",
    "coworker",
    "self_access",
    "dormant_reactivated",
    "two_places",
    "unexplained_access",
    "denied_burst",
    "source_gap",
    "rare_hour",
    "new_client",
    "anomaly",
)
ORDER: dict[str, int] = {}
for _name in (*PRIORITY, *RULE_NAMES):
    ORDER.setdefault(_name, len(ORDER))
# Combinations that mean more than their parts.
ESCALATIONS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"dormant_reactivated", "new_client"}), "high"),
    (frozenset({"dormant_reactivated", "unexplained_access"}), "high"),
    (frozenset({"dormant_reactivated", "rare_hour"}), "medium"),
)


@dataclass
class Draft:
    """An alert before it is stored: one subject's episode."""

    subject: str
    account_id: str | None
    vendor_id: str | None
    first_us: int
    last_us: int
    hits: dict[str, dict[str, Any]] = field(default_factory=dict)
    anomaly: float = 0.0
    daynos: set[int] = field(default_factory=set)

    def add(self, h: Hit, n: int) -> None:
        self.first_us, self.last_us = min(self.first_us, h.first_us), max(self.last_us, h.last_us)
        self.vendor_id = self.vendor_id or h.vendor_id
        if h.dayno is not None:
            self.daynos.add(h.dayno)
        e = self.hits.get(h.rule)
        if e is None:
            self.hits[h.rule] = {
                "severity": h.severity,
                "score": h.score,
                "patient_count": h.patient_count,
                "metric": h.metric,
                "sample": list(h.sample[:n]),
                "reasons": list(h.reasons),
                "standalone": h.standalone,
                "first_us": h.first_us,
                "last_us": h.last_us,
            }
            return
        if RANK[h.severity] > RANK[e["severity"]]:
            e["severity"] = h.severity
        e["score"] = max(e["score"], h.score)
        e["patient_count"] += h.patient_count
        e["metric"] = max(e["metric"], h.metric)
        e["sample"] = sorted(set(e["sample"]) | set(h.sample))[:n]
        e["reasons"] += [r for r in h.reasons if r not in e["reasons"]]
        e["standalone"] = e["standalone"] or h.standalone
        e["first_us"], e["last_us"] = min(e["first_us"], h.first_us), max(e["last_us"], h.last_us)


def summarise(
    hits: dict[str, dict[str, Any]], anomaly: float, p: DetectionSettings
) -> dict[str, Any]:
    """Derive an alert's headline fields from its per-rule entries."""
    ranked = sorted(
        hits.items(), key=lambda kv: (-RANK[kv[1]["severity"]], ORDER.get(kv[0], 99), kv[0])
    )
    severity = ranked[0][1]["severity"]
    names = frozenset(hits)
    for combo, floor in ESCALATIONS:
        if combo <= names and RANK[floor] > RANK[severity]:
            severity = floor
    reasons: list[str] = []
    sample: list[str] = []
    for _, e in ranked:
        reasons += [r for r in e["reasons"] if r not in reasons]
        sample += [s for s in e["sample"] if s not in sample]
    return {
        "rule": ranked[0][0],
        "severity": severity,
        "score": combine([e["score"] for e in hits.values()], anomaly, p.anomaly_weight),
        "patient_count": max(int(e["patient_count"]) for e in hits.values()),
        "reasons": reasons,
        "sample": sample[: p.sample_size],
        "standalone": any(e["standalone"] for e in hits.values()),
    }


def episodes(
    hits: Iterable[Hit], days: dict[tuple[str, int], DayScore], p: DetectionSettings
) -> list[Draft]:
    """Group hits into one draft per subject and episode; attach the anomaly score."""
    gap = int(p.merge_gap_hours * 3_600_000_000)
    repeat = int(p.repeat_merge_days * 86_400_000_000)
    by_subject: dict[str, list[Hit]] = {}
    for h in hits:
        by_subject.setdefault(h.subject, []).append(h)
    drafts: list[Draft] = []
    for subject in sorted(by_subject):
        current: Draft | None = None
        for h in sorted(by_subject[subject], key=lambda h: (h.first_us, h.last_us, h.rule)):
            if current is None or (
                h.first_us > current.last_us + gap
                and not (h.rule in current.hits and h.first_us <= current.last_us + repeat)
            ):
                current = Draft(subject, h.account_id, h.vendor_id, h.first_us, h.last_us)
                drafts.append(current)
            current.add(h, p.sample_size)
    for d in drafts:
        scores = [days[(d.subject, n)].score for n in d.daynos if (d.subject, n) in days]
        d.anomaly = max(scores, default=0.0)
    return [d for d in drafts if summarise(d.hits, d.anomaly, p)["standalone"]]


# -- suppression -----------------------------------------------------------------------------
def active_suppressions(s: Session, now: datetime) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for sup in s.execute(select(Suppression).where(Suppression.until > now)).scalars():
        key = (sup.subject, sup.rule)
        out[key] = max(out.get(key, 0.0), sup.max_metric)
    return out


def suppress(hits: list[Hit], sup: dict[tuple[str, str], float], growth: float) -> list[Hit]:
    return [
        h
        for h in hits
        if (h.subject, h.rule) not in sup or h.metric >= sup[(h.subject, h.rule)] * growth
    ]


# -- storage ---------------------------------------------------------------------------------
def _better(new: dict[str, Any], old: dict[str, Any]) -> bool:
    return (RANK[new["severity"]], new["patient_count"]) >= (
        RANK[old["severity"]],
        old["patient_count"],
    )


def _apply(
    row: Alert, hits: dict[str, dict[str, Any]], anomaly: float, p: DetectionSettings
) -> None:
    summary = summarise(hits, anomaly, p)
    row.hits = hits
    row.anomaly = anomaly
    row.rule, row.severity, row.score = summary["rule"], summary["severity"], summary["score"]
    row.patient_count = summary["patient_count"]
    row.reasons, row.sample = summary["reasons"], summary["sample"]


def save(
    app: App, drafts: list[Draft], p: DetectionSettings, *, origin: str, actor: str
) -> tuple[list[Alert], list[Alert]]:
    """Store drafts, merging each into an overlapping alert of its subject if there is one.

    Returns (alerts touched by these drafts, alerts that are new or more severe than before)."""
    gap = timedelta(hours=p.merge_gap_hours)
    repeat = timedelta(days=p.repeat_merge_days)
    now = app.clock.now()
    touched: list[Alert] = []
    raised: list[tuple[Alert, str | None]] = []
    with app.session() as s:
        for d in drafts:
            first, last = from_us(d.first_us), from_us(d.last_us)
            near = (
                s.execute(
                    select(Alert)
                    .where(
                        Alert.subject == d.subject,
                        Alert.first_ts <= last + repeat,
                        Alert.last_ts >= first - repeat,
                    )
                    .order_by(Alert.id)
                )
                .scalars()
                .all()
            )
            row = next(
                (
                    a
                    for a in near
                    if (a.first_ts <= last + gap and a.last_ts >= first - gap)
                    or set(a.hits) & set(d.hits)
                ),
                None,
            )
            if row is None:
                row = Alert(
                    alert_id=f"tmp-{id(d)}"[:16],
                    subject=d.subject,
                    account_id=d.account_id,
                    vendor_id=d.vendor_id,
                    first_ts=first,
                    last_ts=last,
                    status="open",
                    origin=origin,
                    created_at=now,
                    updated_at=now,
                )
                _apply(row, {k: dict(v) for k, v in d.hits.items()}, d.anomaly, p)
                s.add(row)
                s.flush()
                row.alert_id = f"a-{row.id:04d}"
                raised.append((row, None))
            else:
                before_sev, before_rules = row.severity, set(row.hits)
                merged = dict(row.hits)
                for rule, entry in d.hits.items():
                    if rule not in merged or _better(entry, merged[rule]):
                        merged[rule] = dict(entry)
                if (
                    merged == row.hits
                    and d.anomaly <= row.anomaly
                    and first >= row.first_ts
                    and last <= row.last_ts
                ):
                    touched.append(row)
                    continue
                row.first_ts, row.last_ts = min(row.first_ts, first), max(row.last_ts, last)
                row.vendor_id = row.vendor_id or d.vendor_id
                _apply(row, merged, max(row.anomaly, d.anomaly), p)
                row.updated_at = now
                grew = RANK[row.severity] > RANK[before_sev] or not set(merged) <= before_rules
                if grew and row.status != "open":
                    row.status = "open"  # new evidence reopens a closed alert
                if RANK[row.severity] > RANK[before_sev]:
                    raised.append((row, before_sev))
            touched.append(row)
        s.flush()
        s.expunge_all()
    for row, before in raised:
        app.record(
            Tag.ALERT_RAISED,
            actor=actor,
            subject=row.alert_id,
            rule=row.rule,
            severity=row.severity,
            previous_severity=before,
            account_id=row.account_id,
            vendor_id=row.vendor_id,
            patient_count=row.patient_count,
            origin=origin,
        )
    return touched, [r for r, _ in raised]


def mark(app: App, alert_id: str, **values: Any) -> None:
    with app.session() as s:
        row = s.execute(select(Alert).where(Alert.alert_id == alert_id)).scalar_one()
        for k, v in values.items():
            setattr(row, k, v)


# -- reading ---------------------------------------------------------------------------------
def sort_key(a: Alert) -> tuple[Any, ...]:
    return (-RANK[a.severity], -a.score, a.first_ts, a.id)


def get(app: App, alert_id: str) -> Alert:
    with app.session() as s:
        row = s.execute(select(Alert).where(Alert.alert_id == alert_id)).scalar_one_or_none()
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        s.expunge(row)
        return row


def list_alerts(
    app: App,
    *,
    status: str | None = "open",
    severity: str | None = None,
    account_id: str | None = None,
    limit: int | None = None,
) -> list[Alert]:
    if severity is not None and severity not in RANK:
        raise UsageError(f"unknown severity {severity!r} (low, medium, high, critical)")
    with app.session() as s:
        q = select(Alert)
        if status and status != "all":
            q = q.where(Alert.status == status)
        if severity:
            q = q.where(Alert.severity.in_([x for x in RANK if RANK[x] >= RANK[severity]]))
        if account_id:
            q = q.where(or_(Alert.account_id == account_id, Alert.vendor_id == account_id))
        rows = list(s.execute(q).scalars())
        s.expunge_all()
    rows.sort(key=sort_key)
    return rows[:limit] if limit else rows


def as_json(a: Alert, tz: str) -> dict[str, Any]:
    """The alert as spec §3.1 prints it (plus optional fields: rules, status, verdict)."""
    zone = ZoneInfo(tz)
    return {
        "alert_id": a.alert_id,
        "rule": a.rule,
        "severity": a.severity,
        "account_id": a.account_id,
        "vendor_id": a.vendor_id,
        "first_ts": a.first_ts.astimezone(zone).isoformat(timespec="seconds"),
        "last_ts": a.last_ts.astimezone(zone).isoformat(timespec="seconds"),
        "patient_count": a.patient_count,
        "score": round(a.score, 2),
        "reasons": list(a.reasons),
        "patient_ids_sample": list(a.sample),
        "rules": sorted(a.hits, key=lambda r: ORDER.get(r, 99)),
        "status": a.status,
        "verdict": a.verdict,
    }


# -- verdicts and accuracy -------------------------------------------------------------------
def resolve(
    app: App, alert_id: str, verdict: str, *, actor: str, note: str | None, p: DetectionSettings
) -> Alert:
    if verdict not in VERDICTS:
        raise UsageError(f"unknown verdict {verdict!r} (expected one of {', '.join(VERDICTS)})")
    now = app.clock.now()
    with app.session() as s:
        row = s.execute(select(Alert).where(Alert.alert_id == alert_id)).scalar_one_or_none()
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        if row.status == "resolved":
            raise Conflict(f"alert {alert_id} is already resolved ({row.verdict})")
        row.status, row.verdict, row.note = "resolved", verdict, note
        row.resolved_by, row.resolved_at, row.updated_at = actor, now, now
        if verdict in SUPPRESSING and p.suppress_days > 0:
            for rule, entry in row.hits.items():
                s.add(
                    Suppression(
                        subject=row.subject,
                        rule=rule,
                        max_metric=float(entry.get("metric") or 0.0),
                        until=now + timedelta(days=p.suppress_days),
                        alert_id=alert_id,
                        created_by=actor,
                        created_at=now,
                    )
                )
        s.flush()
        s.expunge(row)
    app.record(
        Tag.ALERT_RESOLVED,
        actor=actor,
        subject=alert_id,
        verdict=verdict,
        rule=row.rule,
        account_id=row.account_id,
    )
    return row


def accuracy(app: App) -> dict[str, Any]:
    """Precision per rule and overall, from the verdicts investigators gave."""
    with app.session() as s:
        rows = s.execute(select(Alert.hits, Alert.status, Alert.verdict, Alert.severity)).all()
        open_n = s.execute(
            select(func.count()).select_from(Alert).where(Alert.status == "open")
        ).scalar_one()
    per_rule: dict[str, dict[str, int]] = {}
    totals = {v: 0 for v in VERDICTS}
    by_severity = {s: 0 for s in RANK}
    for hits, status, verdict, severity in rows:
        by_severity[severity] += 1
        if status != "resolved" or verdict not in totals:
            continue
        totals[verdict] += 1
        for rule in hits:
            per_rule.setdefault(rule, {v: 0 for v in VERDICTS})[verdict] += 1

    def precision(c: dict[str, int]) -> float | None:
        judged = sum(c.values())
        return round(c["true_positive"] / judged, 3) if judged else None

    return {
        "alerts": len(rows),
        "open": open_n,
        "by_severity": by_severity,
        "resolved": sum(totals.values()),
        **totals,
        "precision": precision(totals),
        "by_rule": {r: {**c, "precision": precision(c)} for r, c in sorted(per_rule.items())},
    }


__all__ = [
    "VERDICTS",
    "Draft",
    "accuracy",
    "as_json",
    "episodes",
    "get",
    "list_alerts",
    "resolve",
    "save",
    "summarise",
    "suppress",
]
