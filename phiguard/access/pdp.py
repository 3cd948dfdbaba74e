"""The policy decision point: "may account A do action X on patient P (fields F, N rows)
for purpose U now?" → allow/deny, reasons, obligations.

Two evaluators share one policy set:

* **cedar** — every decision goes through cedarpy: one Cedar request per candidate grant
  or break-glass session, in one batch call. This is the reference semantics.
* **python** — the built-in policies (``policies/base.cedar``) compiled by hand into the
  comparisons of :func:`evaluate`, over pre-computed :class:`Subject` values. A decision is
  then a few microseconds. A differential property test keeps the two in step on random
  subjects and questions; ``engine=auto`` (the default) uses python while only the built-in
  policies are loaded and switches to cedar as soon as an operator adds a policy file, so
  an operator's policy is never silently ignored.

Whatever the evaluator, the reasons and obligations are computed here, in Python, from the
same subject: reasons say exactly which window, scope, field, row limit, contract, training
or suspension decided; obligations tell the caller what to enforce (fields to mask, row
limit, the grant's end, break-glass review).

Every decision is written to the audit log (``access:decision:made``). A single-use grant
is consumed by the decision that uses it (an atomic compare-and-set on its status).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text, update

from phiguard.access import common as c
from phiguard.access import policy as cedar
from phiguard.access.models import AccessState
from phiguard.access.settings import AccessSettings
from phiguard.access.subjects import BreakGlassView, GrantView, Subject, load_subjects
from phiguard.audit.tags import Tag
from phiguard.clock import parse_ts
from phiguard.errors import UsageError
from phiguard.storage.models import Grant, ImportRun

if TYPE_CHECKING:
    from phiguard.app import App

CARE_PURPOSES = frozenset({"", "TREAT", "ETREAT", "CAREMGT", "HOPERAT", "HPAYMT"})
STAFF_ACTIONS = frozenset({"read", "search", "print", "update"})
BREAKGLASS_ACTIONS = frozenset({"read", "search", "print"})


@dataclass(frozen=True, slots=True)
class Question:
    account_id: str
    action: str
    now: int
    fields: frozenset[str] = frozenset()
    rows: int = 1
    purpose: str = ""
    cluster: str = ""  # the target cluster ("" = unknown)
    patient: str = ""
    vip: bool = False


@dataclass(slots=True)
class Verdict:
    allowed: bool
    basis: str | None = None  # "grant:<id>", "staff-baseline", "breakglass:<id>"
    grant: GrantView | None = None  # the grant relied on, when basis is a grant
    forbids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    obligations: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allowed else "deny",
            "reasons": self.reasons,
            "obligations": self.obligations,
        }


# -- the compiled built-in policies ----------------------------------------------------------
def forbids_of(sub: Subject, q: Question) -> list[str]:
    """The built-in forbid policies that fire, in the order of ``base.cedar``."""
    now = q.now
    out = []
    if sub.status != "active":
        out.append("account-disabled")
    if now < sub.active_from or now >= sub.active_until:
        out.append("account-out-of-date")
    contractor = sub.kind == "contractor"
    if contractor and not sub.vendor_known:
        out.append("unknown-vendor")
    if sub.vendor_known and sub.vendor_status != "active":
        out.append("vendor-suspended")
    if contractor:
        until, dpa = sub.contract_at(now)
        if now >= until:
            out.append("no-contract")
        if not dpa:
            out.append("no-dpa")
    if sub.vendor_known and now >= sub.assessment_until:
        out.append("assessment-lapsed")
    if contractor and now >= sub.training_until:
        out.append("training-expired")
    if contractor and q.vip:
        out.append("contractor-vip")
    return out


def covers(g: GrantView, q: Question) -> bool:
    """The ``grant`` permit of base.cedar, as one boolean (the hot path; no allocation)."""
    return (
        g.status == "active"
        and g.valid_from <= q.now < g.valid_to
        and q.action in g.actions
        and (g.cluster == "ALL" or g.cluster == q.cluster)
        and (g.all_fields or q.fields <= g.fields)
        and q.rows <= g.max_rows
        and (not q.purpose or q.purpose == g.purpose)
    )


def baseline_covers(sub: Subject, q: Question) -> bool:
    """The ``staff-baseline`` permit of base.cedar."""
    return (
        sub.kind == "staff"
        and sub.clinical
        and q.action in STAFF_ACTIONS
        and (sub.cluster == "ALL" or sub.cluster == q.cluster)
        and q.rows <= sub.baseline_rows
        and q.purpose in CARE_PURPOSES
    )


def grant_misses(g: GrantView, q: Question) -> list[str]:
    """Why ``g`` does not cover ``q`` (empty: it does). Mirrors the ``grant`` permit."""
    miss = []
    if g.status != "active":
        miss.append(f"it was {g.status}" + (f" ({g.end_reason})" if g.end_reason else ""))
    if q.now < g.valid_from:
        miss.append(f"it starts at {g.starts_text}")
    if q.now >= g.valid_to:
        miss.append(f"it ended at {g.ends_text}")
    if q.action not in g.actions:
        miss.append(f"it does not allow {q.action} (only {g.actions_text})")
    if g.cluster != "ALL" and g.cluster != q.cluster:
        miss.append(f"it covers {g.cluster}, not {q.cluster or 'an unnamed cluster'}")
    if not g.all_fields and not q.fields <= g.fields:
        extra = ", ".join(sorted(q.fields - g.fields))
        miss.append(f"it does not include the field(s) {extra}")
    if q.rows > g.max_rows:
        miss.append(f"it allows at most {g.max_rows:,} rows and {q.rows:,} were asked")
    if q.purpose and q.purpose != g.purpose:
        miss.append(f"it is for purpose {g.purpose}, not {q.purpose}")
    return miss


def baseline_misses(sub: Subject, q: Question) -> list[str]:
    if sub.kind != "staff":
        return ["contractors have no baseline access"]
    if not sub.clinical:
        return [f"role {sub.role} is not covered by the clinical baseline"]
    miss = []
    if q.action not in STAFF_ACTIONS:
        miss.append(f"it never allows {q.action}")
    if sub.cluster != "ALL" and sub.cluster != q.cluster:
        miss.append(
            f"it covers the home cluster {sub.cluster}, not {q.cluster or 'an unnamed cluster'}"
        )
    if q.rows > sub.baseline_rows:
        miss.append(f"it allows at most {sub.baseline_rows:,} rows and {q.rows:,} were asked")
    if q.purpose not in CARE_PURPOSES:
        miss.append(f"purpose {q.purpose} is not a care purpose")
    return miss


def breakglass_misses(b: BreakGlassView, q: Question, max_rows: int) -> list[str]:
    miss = []
    if b.status != "active" or q.now >= b.ends:
        miss.append(f"it ended at {_at(b.ends)}")
    if q.now < b.starts:
        miss.append(f"it starts at {_at(b.starts)}")
    if q.action not in BREAKGLASS_ACTIONS:
        miss.append(f"break-glass never allows {q.action}")
    if b.cluster != "ALL" and b.cluster != q.cluster:
        miss.append(f"it covers {b.cluster}, not {q.cluster or 'an unnamed cluster'}")
    if b.patient and b.patient != q.patient:
        miss.append("it covers another patient")
    if q.rows > max_rows:
        miss.append(f"it allows at most {max_rows:,} rows and {q.rows:,} were asked")
    return miss


def evaluate(sub: Subject, q: Question, settings: AccessSettings) -> Verdict:
    """The built-in policies, compiled: forbid overrides permit; any matching permit allows."""
    forbids = forbids_of(sub, q)
    basis = choose(sub, q, settings)
    return Verdict(allowed=basis is not None and not forbids, basis=basis, forbids=forbids)


def choose(sub: Subject, q: Question, settings: AccessSettings) -> str | None:
    """The permit that matches, preferring the grant that needs the fewest masks."""
    best: GrantView | None = None
    for g in sub.grants:
        if covers(g, q) and (best is None or _wider(g, best)):
            best = g
    if best is not None:
        return f"grant:{best.grant_id}"
    if baseline_covers(sub, q):
        return "staff-baseline"
    for b in sub.breakglass:
        if not breakglass_misses(b, q, settings.breakglass_max_rows):
            return f"breakglass:{b.session_id}"
    return None


def _wider(a: GrantView, b: GrantView) -> bool:
    return (a.all_fields, len(a.fields), a.valid_to) > (b.all_fields, len(b.fields), b.valid_to)


# -- reasons and obligations -------------------------------------------------------------------
def explain(
    sub: Subject, q: Question, verdict: Verdict, settings: AccessSettings, store: cedar.PolicyStore
) -> None:
    """Fill in ``verdict.reasons`` and ``verdict.obligations``."""
    if verdict.allowed and verdict.basis:
        kind, _, ident = verdict.basis.partition(":")
        if kind == "grant":
            g = verdict.grant or next(x for x in sub.grants if x.grant_id == ident)
            verdict.grant = g
            verdict.reasons.append(
                f"grant {g.grant_id} allows {g.actions_text} of up to "
                f"{g.max_rows:,} rows in {g.cluster} for {g.purpose} until {g.ends_text}"
            )
            verdict.obligations.append({"type": "row_limit", "max_rows": g.max_rows})
            if not g.all_fields and not q.fields:
                masked = sorted(set(c.KNOWN_FIELDS) - g.fields)
                if masked:
                    verdict.obligations.append({"type": "mask_fields", "fields": masked})
            verdict.obligations.append(
                {
                    "type": "grant",
                    "grant_id": g.grant_id,
                    "purpose": g.purpose,
                    "valid_to": g.ends_text,
                }
            )
            if g.single_use:
                verdict.obligations.append({"type": "single_use", "grant_id": g.grant_id})
        elif kind == "breakglass":
            b = next(x for x in sub.breakglass if x.session_id == ident)
            verdict.reasons.append(
                f"break-glass session {b.session_id} is active until "
                f"{_at(b.ends)}; it must be reviewed by {_at(b.review_due)}"
            )
            verdict.obligations.append(
                {"type": "row_limit", "max_rows": settings.breakglass_max_rows}
            )
            verdict.obligations.append(
                {"type": "break_glass", "session_id": b.session_id, "review_due": _at(b.review_due)}
            )
        elif kind == "staff-baseline":
            verdict.reasons.append(
                f"clinical baseline: {sub.role} in {sub.cluster} may {q.action} for care"
            )
            verdict.obligations.append({"type": "row_limit", "max_rows": sub.baseline_rows})
        else:  # an operator's permit policy (cedar engine)
            verdict.reasons.append(f"allowed by policy {ident or kind}")
        return
    for pid in verdict.forbids:
        verdict.reasons.append(_forbid_sentence(pid, sub, q, store))
    if verdict.forbids and verdict.basis is not None:
        return  # a permit matched; the forbids alone explain the deny
    verdict.reasons.extend(_no_permit(sub, q, settings))
    if not verdict.reasons:  # e.g. an operator policy set in which no permit applies
        verdict.reasons.append("no policy permits this")


def _forbid_sentence(pid: str, sub: Subject, q: Question, store: cedar.PolicyStore) -> str:
    a, v = sub.account_id, sub.vendor_id
    if pid == "account-disabled":
        return f"account {a} is {sub.status}"
    if pid == "account-out-of-date":
        return f"account {a} is valid only from {_at(sub.active_from)} to {_at(sub.active_until)}"
    if pid == "unknown-vendor":
        return f"account {a}'s employer {v} is not a registered vendor"
    if pid == "vendor-suspended":
        return f"vendor {v} is {sub.vendor_status}"
    if pid == "no-contract":
        ended = sub.contract_ended(q.now)
        if ended is not None:
            return f"vendor {v}'s contract ended at {_at(ended)}"
        return f"vendor {v} has no contract in force at {_at(q.now)}"
    if pid == "no-dpa":
        return f"vendor {v}'s contract has no signed data-processing agreement"
    if pid == "assessment-lapsed":
        if not sub.assessment_known:
            return f"vendor {v} has no passed security assessment on record"
        return f"vendor {v}'s security assessment lapsed at {_at(sub.assessment_until)}"
    if pid == "training-expired":
        if not sub.training_known:
            return f"{a} has no privacy training on record"
        return f"{a}'s privacy training expired at {_at(sub.training_until)}"
    if pid == "contractor-vip":
        return f"patient {q.patient} is restricted (VIP); contractors never see VIP records"
    policy = store.policies.get(pid)
    return f"policy {pid}: {policy.reason if policy else 'forbids this'}"


def _no_permit(sub: Subject, q: Question, settings: AccessSettings) -> list[str]:
    out = []
    for g in sub.grants:
        miss = grant_misses(g, q)
        if miss:
            out.append(f"grant {g.grant_id} does not cover this: " + "; ".join(miss))
    for b in sub.breakglass:
        miss = breakglass_misses(b, q, settings.breakglass_max_rows)
        if miss:
            out.append(
                f"break-glass session {b.session_id} does not cover this: " + "; ".join(miss)
            )
    if sub.kind == "staff":
        out.append(
            "the clinical baseline does not cover this: " + "; ".join(baseline_misses(sub, q))
        )
    if not sub.grants and not sub.breakglass:
        out.append(f"account {sub.account_id} holds no grant")
    return out


def _at(epoch_s: int) -> str:
    if epoch_s >= c.FAR_FUTURE:
        return "open end"
    return c.iso(datetime.fromtimestamp(epoch_s, c.HKT)) or ""


@lru_cache(maxsize=4096)
def _fields(text: str | None) -> frozenset[str]:
    """Field lists repeat (a system asks the same shapes of query): parse each text once."""
    return frozenset(c.parse_fields(text, allow_all=False))


# -- the decision point ----------------------------------------------------------------------
class PolicyDecisionPoint:
    """One per app (see :func:`pdp_for`). Caches subjects and patients; reloads them when
    access rights change (at once for changes made in this process, within
    ``cache_check_seconds`` for changes made by another process or by an import)."""

    def __init__(self, app: App, settings: AccessSettings | None = None) -> None:
        self.app = app
        self.settings = settings or c.settings_of(app)
        extra = self.settings.policy_dir or app.home.root / "policies"
        self.store = cedar.load(extra)
        engine = self.settings.engine
        self.engine = (
            ("python" if self.store.builtin_only else "cedar") if engine == "auto" else engine
        )
        if self.engine == "python" and not self.store.builtin_only:
            raise UsageError("engine=python cannot evaluate operator policies; use cedar or auto")
        self._subjects: dict[str, Subject | None] = {}
        self._stamp: tuple[int, int] | None = None
        self._local = -1
        self._checked = 0.0
        self._patient = lru_cache(maxsize=self.settings.patient_cache_size)(self._load_patient)

    # -- caches --------------------------------------------------------------------------------
    def _fresh(self) -> None:
        local = c.local_generation(self.app.engine)
        mono = time.monotonic()
        if local == self._local and mono - self._checked < self.settings.cache_check_seconds:
            return
        stamp = self._read_stamp()
        self._checked = mono
        if local != self._local or stamp != self._stamp:
            self._subjects.clear()
            self._patient.cache_clear()
            self._local, self._stamp = local, stamp

    def _read_stamp(self) -> tuple[int, int]:
        with self.app.engine.connect() as conn:
            version = (
                conn.execute(select(AccessState.version).where(AccessState.id == 1)).scalar() or 0
            )
            imports = (
                conn.execute(select(ImportRun.id).order_by(ImportRun.id.desc()).limit(1)).scalar()
                or 0
            )
        return int(version), int(imports)

    def preload(self) -> int:
        """Load every account's subject now (a warm start for a server or a benchmark)."""
        self._fresh()
        with self.app.session() as s:
            subjects = load_subjects(s, self.settings)
        self._subjects.update(subjects)
        return len(subjects)

    def subject(self, account_id: str) -> Subject | None:
        if account_id not in self._subjects:
            with self.app.session() as s:
                self._subjects[account_id] = load_subjects(s, self.settings, [account_id]).get(
                    account_id
                )
        return self._subjects[account_id]

    def _load_patient(self, patient_id: str) -> tuple[str, bool] | None:
        with self.app.engine.connect() as conn:
            row = conn.execute(
                text("SELECT cluster, vip FROM patients WHERE patient_id = :p"), {"p": patient_id}
            ).first()
        return None if row is None else (str(row[0]), bool(row[1]))

    # -- deciding ------------------------------------------------------------------------------
    def question(
        self,
        *,
        account: str,
        action: str,
        patient: str | None = None,
        cluster: str | None = None,
        fields: str | list[str] | None = None,
        rows: int | None = None,
        purpose: str | None = None,
        at: datetime | str | None = None,
    ) -> tuple[Question | None, list[str]]:
        """Validate the arguments (bad usage raises) and resolve the patient; a question that
        cannot be asked (unknown patient, cluster mismatch) comes back as deny reasons."""
        act = c.parse_action(action)
        wanted = (
            _fields(fields)
            if isinstance(fields, str) or fields is None
            else _fields(",".join(fields))
        )
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 0):
            raise UsageError("rows must be a whole number of at least 0")
        code = c.parse_purpose(purpose, self.settings, required=False)
        try:
            when = parse_ts(at) if isinstance(at, str) else at
        except ValueError:
            raise UsageError(f"time {at!r} is not ISO-8601") from None
        when = c.aware(when) if when is not None else self.app.clock.now()
        target = c.parse_cluster(cluster, required=False) if cluster else ""
        account = (account or "").strip()
        if not account:
            raise UsageError("an account is required")
        pid = (patient or "").strip()
        vip = False
        if pid:
            found = self._patient(pid)
            if found is None:
                return None, [f"unknown patient {pid}"]
            home, vip = found
            if target and target != home:
                return None, [f"patient {pid} is in {home}, not {target}"]
            target = home
        n = rows if rows is not None else 1
        return Question(account, act, c.epoch(when), wanted, n, code, target, pid, vip), []

    def decide_question(self, q: Question) -> Verdict:
        self._fresh()
        sub = self.subject(q.account_id)
        if sub is None:
            return Verdict(False, reasons=[f"unknown account {q.account_id}"])
        if self.engine == "python":
            verdict = evaluate(sub, q, self.settings)
        else:
            verdict = self._cedar(sub, q)
        explain(sub, q, verdict, self.settings, self.store)
        return verdict

    def _cedar(self, sub: Subject, q: Question) -> Verdict:
        until, dpa = sub.contract_at(q.now)
        ctx = {
            "now": q.now,
            "action": q.action,
            "fields": sorted(q.fields),
            "rows": q.rows,
            "purpose": q.purpose,
            "contract_until": until,
            "contract_dpa": dpa,
            "target": {"cluster": q.cluster, "patient": q.patient, "vip": q.vip},
        }
        res = cedar.evaluate(
            self.store,
            sub,
            action=q.action,
            context=ctx,
            breakglass_rows=self.settings.breakglass_max_rows,
        )
        if res.errors:  # Cedar skips a policy that errors; fail closed instead
            return Verdict(
                False,
                forbids=list(res.forbids),
                reasons=[f"policy evaluation failed: {res.errors[0]}"],
            )
        if not res.allowed:
            return Verdict(False, basis=choose(sub, q, self.settings), forbids=list(res.forbids))
        grants = {x.grant_id: x for x in sub.grants}
        allowed = [grants[a[6:]] for a in res.allowed if a.startswith("grant:")]
        if allowed:
            best = allowed[0]
            for g in allowed[1:]:
                best = g if _wider(g, best) else best
            return Verdict(True, basis=f"grant:{best.grant_id}")
        if "none" in res.allowed:
            builtin = "staff-baseline" in res.permits and baseline_covers(sub, q)
            other = [p for p in res.permits if p not in ("grant", "break-glass")]
            return Verdict(
                True,
                basis="staff-baseline"
                if builtin
                else f"policy:{other[0] if other else 'operator'}",
            )
        return Verdict(True, basis=res.allowed[0])

    def consume(self, grant_id: str, q: Question) -> bool:
        """Use up a single-use grant; False if another decision used it first."""
        now = datetime.fromtimestamp(q.now, c.HKT)
        from phiguard.access.grants import end_grant

        with self.app.session() as s:
            result: Any = s.execute(
                update(Grant)
                .where(Grant.grant_id == grant_id, Grant.status == "active")
                .values(status="used")
            )
            won = result.rowcount
            if not won:
                return False
            grant = s.get(Grant, grant_id)
            assert grant is not None
            end_grant(
                self.app,
                s,
                grant,
                status="used",
                actor=q.account_id,
                now=now,
                reason="single-use grant used",
                tag=Tag.GRANT_CONSUMED,
            )
            c.bump(s)
        return True


def pdp_for(app: App) -> PolicyDecisionPoint:
    point = app.__dict__.get("_access_pdp")
    if point is None:
        point = PolicyDecisionPoint(app)
        app.__dict__["_access_pdp"] = point
    return point


def invalidate(app: App) -> None:
    app.__dict__.pop("_access_pdp", None)


def decide(
    app: App,
    *,
    account: str,
    action: str,
    patient: str | None = None,
    cluster: str | None = None,
    fields: str | list[str] | None = None,
    rows: int | None = None,
    purpose: str | None = None,
    at: datetime | str | None = None,
    record: bool = True,
) -> dict[str, Any]:
    """Decide and audit. Returns ``{"decision", "reasons", "obligations"}``.

    Bad usage (unknown action, malformed field list or time, negative rows) raises
    :class:`~phiguard.errors.UsageError`; anything else — an unknown account or patient
    included — is a deny with its reason. ``POST /v1/decide`` runs the same steps through
    :class:`phiguard.access.batching.DecisionBatcher`, which writes the records of concurrent
    decisions in one durable append.
    """
    result, detail = evaluate_request(
        app,
        account=account,
        action=action,
        patient=patient,
        cluster=cluster,
        fields=fields,
        rows=rows,
        purpose=purpose,
        at=at,
    )
    if record:
        app.record(Tag.DECISION, **detail)
    return result


def evaluate_request(
    app: App,
    *,
    account: str,
    action: str,
    patient: str | None = None,
    cluster: str | None = None,
    fields: str | list[str] | None = None,
    rows: int | None = None,
    purpose: str | None = None,
    at: datetime | str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The decision without its audit record: ``(result, record)`` where ``record`` holds
    the keyword arguments of ``app.record(Tag.DECISION, **record)``. The caller must make
    the record durable before it lets anyone act on ``result``."""
    point = pdp_for(app)
    q, problems = point.question(
        account=account,
        action=action,
        patient=patient,
        cluster=cluster,
        fields=fields,
        rows=rows,
        purpose=purpose,
        at=at,
    )
    if q is None:
        verdict = Verdict(False, reasons=problems)
    else:
        verdict = point.decide_question(q)
        g = verdict.grant
        if verdict.allowed and g is not None and g.single_use and not point.consume(g.grant_id, q):
            verdict = Verdict(False, reasons=[f"single-use grant {g.grant_id} was already used"])
    result = verdict.as_dict()
    detail = {
        "actor": (account or "").strip() or "?",
        "subject": patient or cluster or "",
        "decision": result["decision"],
        "action": action,
        "rows": rows,
        "fields": sorted(q.fields) if q else None,
        "purpose": purpose,
        "at": q.now if q else None,
        "basis": verdict.basis,
        "policies": verdict.forbids,
        "reasons": result["reasons"],
    }
    return result, detail
