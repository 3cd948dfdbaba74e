"""What the decision point knows about an account, pre-computed once and cached.

A :class:`Subject` holds everything a decision about one account needs — its status and
dates, its vendor's status, contracts, assessment and the account's training, its grants
and break-glass sessions — as plain Python values with times as epoch seconds, so that a
decision is a handful of comparisons. Subjects are loaded in bulk (a few queries for any
number of accounts) and dropped whenever access rights change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phiguard.access import common as c
from phiguard.access.assessments import BLOCKING
from phiguard.access.models import Assessment, BreakGlass, Finding, GrantTerms, TrainingRecord
from phiguard.access.settings import AccessSettings
from phiguard.storage.models import Account, Contract, Grant, Vendor

FAR = c.FAR_FUTURE
#: Ended grants kept per account, newest first, to explain why a former grant no longer helps.
KEEP_ENDED = 5


@dataclass(frozen=True, slots=True)
class GrantView:
    grant_id: str
    status: str
    cluster: str
    fields: frozenset[str]
    all_fields: bool
    actions: frozenset[str]
    max_rows: int
    valid_from: int
    valid_to: int
    purpose: str
    single_use: bool
    end_reason: str | None = None
    #: the window's ends as text, formatted once here rather than in every deny reason
    starts_text: str = ""
    ends_text: str = ""
    actions_text: str = ""


@dataclass(frozen=True, slots=True)
class BreakGlassView:
    session_id: str
    status: str
    starts: int
    ends: int
    patient: str
    cluster: str
    review_due: int


@dataclass(slots=True)
class Subject:
    account_id: str
    kind: str  # staff | contractor
    status: str
    active_from: int
    active_until: int
    cluster: str
    role: str
    clinical: bool
    baseline_rows: int
    training_until: int
    training_known: bool
    vendor_id: str | None
    vendor_known: bool
    vendor_status: str
    assessment_until: int
    assessment_known: bool
    contracts: tuple[tuple[int, int, bool], ...]  # (start, until, dpa), sorted
    require_dpa: bool
    grants: tuple[GrantView, ...] = ()
    breakglass: tuple[BreakGlassView, ...] = ()
    cedar_entities: Any = field(default=None, repr=False)

    def contract_at(self, now: int) -> tuple[int, bool]:
        """(until, dpa) of the contract in force at ``now``; (0, False) when none is."""
        until, dpa = 0, False
        for start, end, signed in self.contracts:
            if start <= now < end and end > until:
                until, dpa = end, signed
        return until, (dpa or not self.require_dpa)

    def contract_ended(self, now: int) -> int | None:
        ended = [end for _, end, _ in self.contracts if end <= now]
        return max(ended) if ended else None


def _ts(value: datetime | None, default: int) -> int:
    return c.epoch(value) if value is not None else default


def load_subjects(
    s: Session, settings: AccessSettings, account_ids: Iterable[str] | None = None
) -> dict[str, Subject]:
    """Subjects for the given accounts (all accounts when None), in a fixed number of queries."""
    ids = None if account_ids is None else sorted(set(account_ids))
    if ids is not None and not ids:
        return {}

    def where_in(col: object, values: list[str]) -> object:
        return col.in_(values)  # type: ignore[attr-defined]

    aq = select(Account)
    if ids is not None:
        aq = aq.where(where_in(Account.account_id, ids))  # type: ignore[arg-type]
    accounts = list(s.scalars(aq))
    if not accounts:
        return {}
    acct_ids = [a.account_id for a in accounts]
    vendor_ids = sorted({a.employer for a in accounts if a.employer != c.STAFF})
    chunks = _chunks(acct_ids) if ids is not None else [None]
    vchunks = _chunks(vendor_ids) if ids is not None else [None]

    vendors: dict[str, Vendor] = {}
    contracts: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    assessed: dict[str, int] = {}
    blocking_due: dict[str, int] = {}
    for vc in vchunks:
        if vc is not None and not vc:
            continue
        vq, cq = select(Vendor), select(Contract)
        asq = select(Assessment.vendor_id, Assessment.valid_until).where(
            Assessment.passed.is_(True)
        )
        fq = select(Finding.vendor_id, Finding.due).where(
            Finding.status == "open", Finding.severity.in_(BLOCKING)
        )
        if vc is not None:
            vq = vq.where(Vendor.vendor_id.in_(vc))
            cq = cq.where(Contract.vendor_id.in_(vc))
            asq = asq.where(Assessment.vendor_id.in_(vc))
            fq = fq.where(Finding.vendor_id.in_(vc))
        for v in s.scalars(vq):
            vendors[v.vendor_id] = v
            if v.last_assessment is not None:
                until = (
                    c.epoch(c.day_end(v.last_assessment)) + settings.assessment_valid_days * 86400
                )
                assessed[v.vendor_id] = max(assessed.get(v.vendor_id, 0), until)
        for k in s.scalars(cq):
            end = c.epoch(c.day_end(k.end)) if k.end is not None else FAR
            contracts[k.vendor_id].append((c.epoch(c.day_start(k.start)), end, k.dpa_signed))
        for vid, valid_until in s.execute(asq):
            until = c.epoch(c.day_end(valid_until))
            assessed[vid] = max(assessed.get(vid, 0), until)
        for vid, due in s.execute(fq):
            until = c.epoch(c.day_end(due))
            blocking_due[vid] = min(blocking_due.get(vid, FAR), until)

    training: dict[str, int] = {}
    grants: dict[str, list[GrantView]] = defaultdict(list)
    ended: dict[str, list[GrantView]] = defaultdict(list)
    sessions: dict[str, list[BreakGlassView]] = defaultdict(list)
    for ac in chunks:
        tq = select(TrainingRecord.account_id, TrainingRecord.expires_on).where(
            TrainingRecord.course == settings.training_course
        )
        gq = select(Grant, GrantTerms).outerjoin(GrantTerms, GrantTerms.grant_id == Grant.grant_id)
        bq = select(BreakGlass).where(BreakGlass.status == "active")
        if ac is not None:
            tq = tq.where(TrainingRecord.account_id.in_(ac))
            gq = gq.where(Grant.account_id.in_(ac))
            bq = bq.where(BreakGlass.account_id.in_(ac))
        for aid, expires in s.execute(tq):
            training[aid] = max(training.get(aid, 0), c.epoch(c.day_end(expires)))
        for g, t in s.execute(gq):
            view = _grant_view(g, t)
            (grants if g.status == "active" else ended)[g.account_id].append(view)
        for bg in s.scalars(bq):
            sessions[bg.account_id].append(
                BreakGlassView(
                    bg.session_id,
                    bg.status,
                    c.epoch(bg.started_at),
                    c.epoch(bg.ends_at),
                    bg.patient_id or "",
                    bg.cluster,
                    c.epoch(bg.review_due),
                )
            )

    out: dict[str, Subject] = {}
    clinical_roles = set(settings.clinical_roles)
    for a in accounts:
        staff = a.employer == c.STAFF
        vendor = None if staff else vendors.get(a.employer)
        owner = None if staff else a.employer
        assessment = assessed.get(owner or "", 0)
        if owner and owner in blocking_due:
            assessment = min(assessment, blocking_due[owner])
        if staff or not settings.require_assessment:
            assessment = FAR
        train = training.get(a.account_id, 0)
        if staff or not settings.require_training:
            train = FAR
        old = sorted(ended.get(a.account_id, []), key=lambda g: -g.valid_to)[:KEEP_ENDED]
        out[a.account_id] = Subject(
            account_id=a.account_id,
            kind="staff" if staff else "contractor",
            status=a.status,
            active_from=c.epoch(c.day_start(a.active_from)) if a.active_from else 0,
            active_until=c.epoch(c.day_end(a.active_to)) if a.active_to else FAR,
            cluster=a.cluster,
            role=a.role,
            clinical=staff and a.role in clinical_roles,
            baseline_rows=settings.staff_max_rows,
            training_until=train,
            training_known=a.account_id in training,
            vendor_id=owner,
            vendor_known=vendor is not None,
            vendor_status=vendor.status if vendor is not None else "unknown",
            assessment_until=assessment,
            assessment_known=(owner or "") in assessed,
            contracts=tuple(sorted(contracts.get(owner or "", []))),
            require_dpa=settings.require_dpa,
            grants=tuple(sorted(grants.get(a.account_id, []), key=lambda g: g.grant_id))
            + tuple(old),
            breakglass=tuple(sessions.get(a.account_id, [])),
        )
    return out


def _grant_view(g: Grant, t: GrantTerms | None) -> GrantView:
    fields = frozenset(f.strip() for f in g.scope_fields.split(",") if f.strip())
    return GrantView(
        grant_id=g.grant_id,
        status=g.status,
        cluster=g.scope_cluster,
        fields=fields - {c.ALL_FIELDS},
        all_fields=c.ALL_FIELDS in fields,
        actions=frozenset(x.strip() for x in g.actions.split(",") if x.strip()),
        max_rows=g.max_rows,
        valid_from=c.epoch(g.valid_from),
        valid_to=c.epoch(g.valid_to),
        purpose=g.purpose,
        single_use=bool(t and t.single_use),
        end_reason=t.end_reason if t else None,
        starts_text=c.iso(g.valid_from) or "",
        ends_text=c.iso(g.valid_to) or "",
        actions_text=", ".join(sorted(x.strip() for x in g.actions.split(",") if x.strip())),
    )


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)] or [[]]
