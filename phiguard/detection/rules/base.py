"""The shapes every rule shares: a :class:`Rule` (SQL template + a Python assessor that words the
reasons) and the :class:`Hit` it produces. Rules are data: the pack is a list of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import EPOCH, Reference

SEVERITIES = ("low", "medium", "high", "critical")
RANK = {s: i for i, s in enumerate(SEVERITIES)}
VERBS = {
    "export": "exported",
    "print": "printed",
    "search": "searched and returned",
    "read": "read",
    "update": "updated",
}
BASE_SCORE = {"low": 0.3, "medium": 0.55, "high": 0.8, "critical": 0.95}


@dataclass
class Hit:
    """One rule firing for one subject (an account, or a log source) over a time span."""

    rule: str
    severity: str
    subject: str  # the account id, or "source:<name>" for completeness hits
    first_us: int
    last_us: int
    patient_count: int
    reasons: list[str]
    sample: list[str] = field(default_factory=list)
    account_id: str | None = None
    vendor_id: str | None = None
    standalone: bool = True  # False: only supports other hits in the same episode
    score: float = 0.0
    dayno: int | None = None
    metric: float = 0.0  # the number suppression compares against (usually patient_count)
    ref: str = ""  # what the hit is about within its day (a query id): a later hit with the
    # same rule, subject, day and ref is an update of this one, not a second finding

    def __post_init__(self) -> None:
        if not self.score:
            self.score = BASE_SCORE[self.severity]
        if not self.metric:
            self.metric = float(self.patient_count)

    def key(self) -> tuple[Any, ...]:
        return (self.subject, self.first_us, self.rule, self.last_us, self.patient_count)

    def identity(self) -> tuple[Any, ...]:
        return (self.rule, self.subject, self.dayno, self.ref)


@dataclass
class Context:
    """What assessors may use: thresholds, the reference snapshot, the local time zone."""

    p: DetectionSettings
    ref: Reference
    tz: ZoneInfo
    accounts: dict[str, dict[str, Any]]
    grants: dict[str, list[dict[str, Any]]]

    @classmethod
    def build(cls, p: DetectionSettings, ref: Reference, tz: str) -> Context:
        return cls(p, ref, ZoneInfo(tz), ref.accounts_by_id(), ref.grants_by_account())

    def local(self, us: int) -> datetime:
        return (EPOCH + timedelta(microseconds=us)).astimezone(self.tz)

    def hm(self, us: int) -> str:
        return self.local(us).strftime("%H:%M")

    def day(self, us: int) -> str:
        return self.local(us).strftime("%Y-%m-%d")

    def span(self, first_us: int, last_us: int) -> str:
        a, b = self.local(first_us), self.local(last_us)
        if a.date() == b.date():
            return f"on {a:%Y-%m-%d} between {a:%H:%M} and {b:%H:%M}"
        return f"between {a:%Y-%m-%d %H:%M} and {b:%Y-%m-%d %H:%M}"

    def vendor_of(self, account_id: str | None) -> str | None:
        if account_id is None:
            return None
        acc = self.accounts.get(account_id)
        return acc.get("vendor_id") if acc else None


Assessor = Callable[[dict[str, Any], Context], list[Hit]]


@dataclass(frozen=True)
class Rule:
    name: str
    family: str  # grant, volume, time_place, relationship, integrity
    title: str
    sql: str  # Jinja template: d = dialect macros, p = settings, w = window, n = sample size
    assess: Assessor
    needs: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()  # rule names it can produce besides its own

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.emits)


def num(n: float | int) -> str:
    """1234567 → '1,234,567' (reasons are read by people)."""
    return f"{int(n):,}"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{num(n)} {word if n == 1 else (many or word + 's')}"


def samples(v: Any) -> list[str]:
    return [str(x) for x in (v or [])]


def ratio(a: float, b: float) -> str:
    if b <= 0:
        return "∞"
    r = a / b
    return f"{r:,.0f}×" if r >= 10 else f"{r:.1f}×"
