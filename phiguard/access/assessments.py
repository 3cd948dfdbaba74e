"""Vendor security assessments (a weighted questionnaire with a score, findings with due
dates) and contractor training records with expiry.

A vendor's assessment *holds* from its completion until the earliest of: its validity end
(``PHIGUARD_ACCESS_ASSESSMENT_VALID_DAYS`` after completion) and the due date of any of its
high or critical findings still open. A failed assessment (score below the pass mark)
never holds. The decision point denies a vendor's accounts once nothing holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phiguard.access import common as c
from phiguard.access.models import Assessment, Finding, TrainingRecord
from phiguard.access.settings import AccessSettings
from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, UsageError
from phiguard.storage.models import Vendor

if TYPE_CHECKING:
    from phiguard.app import App

SEVERITIES = ("low", "medium", "high", "critical")
#: Days to fix a finding, by severity, when the assessor gives no due date.
DEFAULT_DUE_DAYS = {"low": 180, "medium": 90, "high": 30, "critical": 14}
BLOCKING = ("high", "critical")


@dataclass(frozen=True)
class Question:
    id: str
    weight: float
    text: str


@cache
def questionnaire() -> tuple[dict[str, float | None], tuple[Question, ...]]:
    raw = json.loads(resources.files("phiguard.access").joinpath("questionnaire.json").read_text())
    questions = tuple(Question(q["id"], float(q["weight"]), q["text"]) for q in raw["questions"])
    return raw["answers"], questions


def score(answers: dict[str, str]) -> float:
    """Weighted score 0-100; ``na`` answers leave the question out of the denominator."""
    values, questions = questionnaire()
    known = {q.id for q in questions}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise UsageError(
            f"unknown question {unknown[0]!r}; questions are {', '.join(sorted(known))}"
        )
    missing = [q.id for q in questions if q.id not in answers]
    if missing:
        raise UsageError(f"question {missing[0]!r} is not answered (yes, partial, no or na)")
    got = total = 0.0
    for q in questions:
        answer = str(answers[q.id]).strip().lower()
        if answer not in values:
            raise UsageError(
                f"answer {answers[q.id]!r} to {q.id!r} is not one of {', '.join(values)}"
            )
        value = values[answer]
        if value is None:
            continue
        got += q.weight * value
        total += q.weight
    if total == 0:
        raise UsageError("every question was answered na; nothing to score")
    return round(100.0 * got / total, 1)


def record_assessment(
    app: App,
    vendor_id: str,
    *,
    answers: dict[str, str],
    assessor: str,
    completed_on: date,
    findings: list[dict[str, Any]] | None = None,
) -> Assessment:
    settings = c.settings_of(app)
    value = score(answers)
    parsed = [_finding(f, completed_on) for f in findings or []]
    if completed_on > c.hk_date(app.clock.now()):
        raise UsageError(f"assessment date {completed_on} is in the future")
    with app.session() as s:
        vendor = s.get(Vendor, (vendor_id or "").strip())
        if vendor is None:
            raise NotFound(f"unknown vendor {vendor_id!r}")
        a = Assessment(
            assessment_id=c.new_id("AS"),
            vendor_id=vendor.vendor_id,
            assessor=assessor,
            completed_on=completed_on,
            valid_until=completed_on + timedelta(days=settings.assessment_valid_days),
            score=value,
            passed=value >= settings.assessment_pass_score,
            answers={k: str(v).lower() for k, v in answers.items()},
        )
        s.add(a)
        s.flush()
        for sev, title, due in parsed:
            s.add(
                Finding(
                    finding_id=c.new_id("F"),
                    assessment_id=a.assessment_id,
                    vendor_id=vendor.vendor_id,
                    severity=sev,
                    title=title,
                    due=due,
                    status="open",
                )
            )
        if a.passed and (vendor.last_assessment is None or vendor.last_assessment < completed_on):
            vendor.last_assessment = completed_on
        c.bump(s)
        c.record(
            app,
            Tag.ASSESSMENT_RECORDED,
            actor=assessor,
            subject=vendor.vendor_id,
            assessment_id=a.assessment_id,
            score=value,
            passed=a.passed,
            findings=len(parsed),
        )
        return a


def add_finding(
    app: App, assessment_id: str, *, severity: str, title: str, due: date | None, actor: str
) -> Finding:
    with app.session() as s:
        a = s.get(Assessment, assessment_id)
        if a is None:
            raise NotFound(f"unknown assessment {assessment_id!r}")
        sev, title, due_on = _finding(
            {"severity": severity, "title": title, "due": due}, a.completed_on
        )
        f = Finding(
            finding_id=c.new_id("F"),
            assessment_id=a.assessment_id,
            vendor_id=a.vendor_id,
            severity=sev,
            title=title,
            due=due_on,
            status="open",
        )
        s.add(f)
        c.bump(s)
        c.record(
            app,
            Tag.FINDING_RECORDED,
            actor=actor,
            subject=a.vendor_id,
            finding_id=f.finding_id,
            severity=sev,
            due=str(due_on),
        )
        return f


def close_finding(app: App, finding_id: str, *, actor: str, note: str = "") -> Finding:
    with app.session() as s:
        f = s.get(Finding, finding_id)
        if f is None:
            raise NotFound(f"unknown finding {finding_id!r}")
        if f.status == "closed":
            raise Conflict(f"finding {finding_id} is already closed")
        f.status, f.closed_on = "closed", c.hk_date(app.clock.now())
        c.bump(s)
        c.record(
            app,
            Tag.FINDING_CLOSED,
            actor=actor,
            subject=f.vendor_id,
            finding_id=f.finding_id,
            note=note,
        )
        return f


def assessment_holds_until(s: Session, vendor: Vendor, settings: AccessSettings) -> datetime | None:
    """The instant from which the vendor has no holding assessment (None: never had one)."""
    best: date | None = None
    if vendor.last_assessment is not None:
        best = vendor.last_assessment + timedelta(days=settings.assessment_valid_days)
    for a in s.scalars(
        select(Assessment).where(
            Assessment.vendor_id == vendor.vendor_id, Assessment.passed.is_(True)
        )
    ):
        if best is None or a.valid_until > best:
            best = a.valid_until
    if best is None:
        return None
    until = c.day_end(best)
    q = select(Finding.due).where(
        Finding.vendor_id == vendor.vendor_id,
        Finding.status == "open",
        Finding.severity.in_(BLOCKING),
    )
    for due in s.scalars(q):
        until = min(until, c.day_end(due))
    return until


def assessment_status(app: App, vendor_id: str) -> dict[str, Any]:
    settings = c.settings_of(app)
    now = app.clock.now()
    with app.session() as s:
        vendor = s.get(Vendor, vendor_id)
        if vendor is None:
            raise NotFound(f"unknown vendor {vendor_id!r}")
        until = assessment_holds_until(s, vendor, settings)
        latest = s.scalars(
            select(Assessment)
            .where(Assessment.vendor_id == vendor_id)
            .order_by(Assessment.completed_on.desc())
        ).first()
        findings = list(
            s.scalars(select(Finding).where(Finding.vendor_id == vendor_id).order_by(Finding.due))
        )
        return {
            "holds": until is not None and now < until,
            "holds_until": c.iso(until),
            "latest": None
            if latest is None
            else {
                "assessment_id": latest.assessment_id,
                "completed_on": str(latest.completed_on),
                "score": latest.score,
                "passed": latest.passed,
                "valid_until": str(latest.valid_until),
            },
            "findings": [
                {
                    "finding_id": f.finding_id,
                    "severity": f.severity,
                    "title": f.title,
                    "due": str(f.due),
                    "status": f.status,
                    "overdue": f.status == "open" and now >= c.day_end(f.due),
                }
                for f in findings
            ],
        }


def record_training(
    app: App,
    account_id: str,
    *,
    course: str | None = None,
    completed_on: date,
    expires_on: date,
    actor: str,
) -> TrainingRecord:
    settings = c.settings_of(app)
    course = (course or settings.training_course).strip()
    if not course:
        raise UsageError("a course name is required")
    if expires_on <= completed_on:
        raise UsageError(f"training expiry {expires_on} is not after its completion {completed_on}")
    if completed_on > c.hk_date(app.clock.now()):
        raise UsageError(f"training completion {completed_on} is in the future")
    with app.session() as s:
        account = c.get_account(s, account_id)
        rec = TrainingRecord(
            account_id=account.account_id,
            course=course,
            completed_on=completed_on,
            expires_on=expires_on,
            recorded_by=actor,
            recorded_at=app.clock.now(),
        )
        s.add(rec)
        c.bump(s)
        c.record(
            app,
            Tag.TRAINING_RECORDED,
            actor=actor,
            subject=account.account_id,
            course=course,
            completed_on=str(completed_on),
            expires_on=str(expires_on),
        )
        return rec


def training_until(s: Session, account_id: str, settings: AccessSettings) -> datetime | None:
    q = select(TrainingRecord.expires_on).where(
        TrainingRecord.account_id == account_id, TrainingRecord.course == settings.training_course
    )
    best = max(s.scalars(q), default=None)
    return c.day_end(best) if best else None


def training_list(app: App, account_id: str | None = None) -> list[dict[str, Any]]:
    now = app.clock.now()
    with app.session() as s:
        q = select(TrainingRecord)
        if account_id:
            q = q.where(TrainingRecord.account_id == account_id)
        return [
            {
                "account_id": t.account_id,
                "course": t.course,
                "completed_on": str(t.completed_on),
                "expires_on": str(t.expires_on),
                "valid": now < c.day_end(t.expires_on),
            }
            for t in s.scalars(q.order_by(TrainingRecord.account_id, TrainingRecord.expires_on))
        ]


def _finding(f: dict[str, Any], completed_on: date) -> tuple[str, str, date]:
    sev = str(f.get("severity", "")).strip().lower()
    if sev not in SEVERITIES:
        raise UsageError(
            f"finding severity {f.get('severity')!r} is not one of {', '.join(SEVERITIES)}"
        )
    title = c.require_text(f.get("title"), "a finding title")
    due = f.get("due")
    if isinstance(due, str) and due:
        try:
            due = date.fromisoformat(due)
        except ValueError:
            raise UsageError(f"finding due date {due!r} is not YYYY-MM-DD") from None
    if not due:
        due = completed_on + timedelta(days=DEFAULT_DUE_DAYS[sev])
    if due < completed_on:
        raise UsageError(f"finding due date {due} is before the assessment {completed_on}")
    return sev, title, due
