"""Property tests: the rules hold against arbitrary subjects, questions and request sequences.

1. Cedar (the reference semantics of policies/base.cedar) and the compiled Python evaluator
   agree on every random subject and question.
2. Whatever the evaluator allows satisfies an independent statement of the rules: inside a
   grant's window, scope, fields, actions, row limit and purpose (or the clinical baseline
   or an active break-glass session), never after contract end, suspension, or with
   expired training.
3. Arbitrary sequences of requests, approvals, denials, revocations and clock moves by
   arbitrary actors never produce a grant that breaks an approval rule.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from phiguard.access import grants as svc
from phiguard.access import policy as cedar
from phiguard.access.approvals import required_approvals
from phiguard.access.models import AccessRequest, Approval, GrantEvent, GrantTerms
from phiguard.access.pdp import Question, decide, evaluate
from phiguard.access.settings import AccessSettings
from phiguard.access.subjects import BreakGlassView, GrantView, Subject
from phiguard.errors import PhiguardError
from phiguard.storage.models import Account, Grant
from tests.access.conftest import World

SETTINGS = AccessSettings()
STORE = cedar.load(None)
H = 3600
CLUSTERS = ["KEC", "KWC", "HKEC", "ALL"]
ACTIONS = ["read", "search", "print", "export", "update"]
FIELDS = ["name", "sex", "hkid", "procedure", "dob"]
PURPOSES = ["", "HOPERAT", "TREAT", "SYSADMIN"]

times = st.integers(0, 40).map(lambda h: h * H)


@st.composite
def grant_views(draw: st.DrawFn, i: int) -> GrantView:
    start = draw(times)
    return GrantView(
        grant_id=f"G{i}",
        status=draw(st.sampled_from(["active", "active", "revoked", "used"])),
        cluster=draw(st.sampled_from(CLUSTERS)),
        fields=frozenset(draw(st.sets(st.sampled_from(FIELDS)))),
        all_fields=draw(st.booleans()),
        actions=frozenset(draw(st.sets(st.sampled_from(ACTIONS), min_size=1))),
        max_rows=draw(st.sampled_from([1, 20, 1000])),
        valid_from=start,
        valid_to=start + draw(st.integers(1, 20)) * H,
        purpose=draw(st.sampled_from(PURPOSES[1:])),
        single_use=False,
    )


@st.composite
def subjects(draw: st.DrawFn) -> Subject:
    contractor = draw(st.booleans())
    good = draw(st.integers(0, 9)) < 7  # most subjects pass every forbid, to reach the permits
    contracts = tuple(
        sorted(
            (s, s + draw(st.integers(1, 30)) * H, draw(st.booleans()))
            for s in draw(st.lists(times, max_size=2))
        )
    )
    if good:
        contracts = ((0, cedar_far(), True), *contracts)
    n = draw(st.integers(0, 3))
    bgs = tuple(
        BreakGlassView(
            f"B{i}",
            draw(st.sampled_from(["active", "ended"])),
            s,
            s + draw(st.integers(1, 5)) * H,
            draw(st.sampled_from(["", "P1", "P2"])),
            draw(st.sampled_from(CLUSTERS)),
            s + 72 * H,
        )
        for i, s in enumerate(draw(st.lists(times, max_size=1)))
    )
    maybe = lambda strat, ok: ok if good else draw(strat)  # noqa: E731
    return Subject(
        account_id="a",
        kind="contractor" if contractor else "staff",
        status=maybe(st.sampled_from(["active", "disabled"]), "active"),
        active_from=maybe(st.sampled_from([0, 10 * H]), 0),
        active_until=maybe(st.sampled_from([30 * H, cedar_far()]), cedar_far()),
        cluster=draw(st.sampled_from(CLUSTERS)),
        role="doctor",
        clinical=draw(st.booleans()) and not contractor,
        baseline_rows=50,
        training_until=maybe(times, cedar_far()) if contractor else cedar_far(),
        training_known=True,
        vendor_id="V" if contractor else None,
        vendor_known=contractor and maybe(st.booleans(), True),
        vendor_status=maybe(st.sampled_from(["active", "suspended"]), "active"),
        assessment_until=maybe(times, cedar_far()) if contractor else cedar_far(),
        assessment_known=True,
        contracts=contracts if contractor else (),
        require_dpa=True,
        grants=tuple(draw(grant_views(i)) for i in range(n)),
        breakglass=bgs,
    )


def cedar_far() -> int:
    from phiguard.access.common import FAR_FUTURE

    return FAR_FUTURE


@st.composite
def questions(draw: st.DrawFn, sub: Subject) -> Question:
    """Random questions, half of them aimed inside one of the subject's grants."""
    patient = draw(st.sampled_from(["", "P1", "P2"]))
    q = Question(
        account_id="a",
        action=draw(st.sampled_from(ACTIONS)),
        now=draw(times),
        fields=frozenset(draw(st.sets(st.sampled_from(FIELDS), max_size=3))),
        rows=draw(st.sampled_from([0, 1, 20, 21, 1000, 56_012])),
        purpose=draw(st.sampled_from(PURPOSES)),
        cluster=draw(st.sampled_from(["", "KEC", "KWC", "HKEC"])),
        patient=patient,
        vip=bool(patient) and draw(st.booleans()),
    )
    if sub.grants and draw(st.booleans()):
        g = draw(st.sampled_from(sub.grants))
        inside = draw(st.integers(0, 99)) >= 15  # mostly inside on every dimension
        fields = (
            st.sets(st.sampled_from(sorted(g.fields)), max_size=2) if g.fields else st.just(set())
        )
        q = Question(
            account_id="a",
            action=draw(st.sampled_from(sorted(g.actions))),
            now=draw(
                st.integers(g.valid_from, g.valid_to - 1)
                if inside
                else st.sampled_from([g.valid_from - 1, g.valid_to])
            ),
            fields=frozenset(draw(fields if inside else st.sets(st.sampled_from(FIELDS)))),
            rows=draw(
                st.integers(0, g.max_rows)
                if inside
                else st.sampled_from([g.max_rows, g.max_rows + 1])
            ),
            purpose=draw(st.sampled_from(["", g.purpose] if inside else ["", g.purpose, "TREAT"])),
            cluster=g.cluster if g.cluster != "ALL" else draw(st.sampled_from(["", "KEC"])),
            patient=patient,
            vip=q.vip and not inside,
        )
    return q


@st.composite
def cases(draw: st.DrawFn) -> tuple[Subject, Question]:
    sub = draw(subjects())
    return sub, draw(questions(sub))


def cedar_allows(sub: Subject, q: Question) -> bool:
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
        STORE, sub, action=q.action, context=ctx, breakglass_rows=SETTINGS.breakglass_max_rows
    )
    assert not res.errors, res.errors
    return bool(res.allowed)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_cedar_and_python_agree(case: tuple[Subject, Question]) -> None:
    sub, q = case
    allowed = evaluate(sub, q, SETTINGS).allowed
    event(f"allowed: {allowed}")
    assert allowed == cedar_allows(sub, q)


def in_grant(g: GrantView, q: Question) -> bool:
    return (
        g.status == "active"
        and g.valid_from <= q.now < g.valid_to
        and q.action in g.actions
        and g.cluster in ("ALL", q.cluster)
        and (g.all_fields or q.fields.issubset(g.fields))
        and q.rows <= g.max_rows
        and q.purpose in ("", g.purpose)
    )


@settings(max_examples=250, deadline=None)
@given(cases())
def test_no_decision_allows_outside_the_rules(case: tuple[Subject, Question]) -> None:
    sub, q = case
    v = evaluate(sub, q, SETTINGS)
    if not v.allowed:
        return
    assert sub.status == "active"
    assert sub.active_from <= q.now < sub.active_until
    if sub.kind == "contractor":
        assert sub.vendor_known and sub.vendor_status == "active"
        assert any(s <= q.now < e and dpa for s, e, dpa in sub.contracts), "contract"
        assert q.now < sub.training_until, "training"
        assert q.now < sub.assessment_until, "assessment"
        assert not q.vip
    by_grant = any(in_grant(g, q) for g in sub.grants)
    by_bg = any(
        b.status == "active"
        and b.starts <= q.now < b.ends
        and q.action in ("read", "search", "print")
        and b.cluster in ("ALL", q.cluster)
        and b.patient in ("", q.patient)
        and q.rows <= SETTINGS.breakglass_max_rows
        for b in sub.breakglass
    )
    by_baseline = (
        sub.kind == "staff"
        and sub.clinical
        and q.action != "export"
        and sub.cluster in ("ALL", q.cluster)
        and q.rows <= sub.baseline_rows
    )
    assert by_grant or by_bg or by_baseline
    if q.action == "export":
        assert by_grant, "export is only ever allowed by a grant"


# -- approval rules against arbitrary sequences -------------------------------------------------
_seq = itertools.count()
ACTORS = ["m1", "m2", "m3", "m1", "m2", "m3", "d1", "c-self", "ghost", "c-other"]

request_args = st.tuples(
    st.sampled_from(CLUSTERS),
    st.sets(st.sampled_from(ACTIONS), min_size=1),
    st.sets(st.sampled_from(FIELDS), min_size=1) | st.just({"*"}) | st.just({"*", "name"}),
    st.sampled_from([1, 500, 1001, 60_000]),
    st.sampled_from(["30m", "8h", "8h", "8h", "169h"]),
    st.sampled_from(["self", "self", "m3"]),
    st.booleans(),
)
after = st.one_of(
    st.tuples(st.just("deny"), st.integers(0, 5), st.sampled_from(ACTORS)),
    st.tuples(st.just("revoke"), st.integers(0, 5), st.sampled_from(ACTORS)),
    st.tuples(st.just("advance"), st.integers(1, 60)),
    st.tuples(
        st.just("decide"),
        st.sampled_from(ACTIONS),
        st.sampled_from(["P1", "P2", ""]),
        st.sampled_from([1, 20, 5000]),
    ),
)
#: rounds of: a request, then approvals by arbitrary actors, then other things happening
rounds = st.lists(
    st.tuples(
        request_args, st.lists(st.sampled_from(ACTORS), max_size=3), st.lists(after, max_size=3)
    ),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rounds)
def test_approval_rules_hold_for_any_sequence(sqlite_app, clock, plan) -> None:
    app = sqlite_app
    w = World(app)
    n = next(_seq)
    if n == 0:
        w.vendor("V1", end=w.today + timedelta(days=3000))
        for m in ("m1", "m2", "m3"):
            w.account(m, role="it_manager")
        w.account("d1", role="doctor")
        w.patient("P1", "KEC")
        w.patient("P2", "KWC")
    me, other = f"c-self-{n}", f"c-other-{n}"
    w.contractor(me)
    w.contractor(other)
    names = {"c-self": me, "c-other": other}
    requests: list[str] = []
    made: list[str] = []

    def attempt(kind: str, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except PhiguardError as exc:
            event(f"{kind} refused: {type(exc).__name__}")
            return None

    for (cl, acts, flds, rows, dur, by, single), approvers, tail in plan:
        r = attempt(
            "request",
            svc.request_access,
            app,
            account_id=me,
            cluster=cl,
            fields=sorted(flds),
            actions=sorted(acts),
            max_rows=rows,
            purpose="HOPERAT",
            ticket="T",
            reason="maintenance work",
            duration=dur,
            single_use=single,
            requested_by=None if by == "self" else by,
        )
        if r is not None:
            requests.append(r.request_id)
        for who in approvers:
            if requests:
                out = attempt("approve", svc.approve, app, requests[-1], names.get(who, who))
                if out is not None and out.grant is not None:
                    made.append(out.grant.grant_id)
        for step in tail:
            if step[0] == "deny" and requests:
                attempt(
                    "deny",
                    svc.deny,
                    app,
                    requests[step[1] % len(requests)],
                    names.get(step[2], step[2]),
                    "not needed",
                )
            elif step[0] == "revoke" and made:
                attempt(
                    "revoke",
                    svc.revoke,
                    app,
                    made[step[1] % len(made)],
                    names.get(step[2], step[2]),
                    "done",
                )
            elif step[0] == "advance":
                clock.advance(timedelta(minutes=step[1] * 10))
            elif step[0] == "decide":
                res = decide(
                    app,
                    account=me,
                    action=step[1],
                    patient=step[2] or None,
                    cluster=None if step[2] else "KEC",
                    rows=step[3],
                )
                event(f"decision: {res['decision']}")
                if res["decision"] == "allow":
                    _assert_allow_backed_by_grant(app, me, step, clock.now())
    event(f"grants made: {min(len(made), 2)}")
    _assert_invariants(app, me)


def _assert_allow_backed_by_grant(app, account, step, now) -> None:
    _, action, patient, rows = step
    cluster = {"P1": "KEC", "P2": "KWC", "": "KEC"}[patient]
    with app.session() as s:
        used_now = {
            t.grant_id
            for t in s.scalars(select(GrantTerms).where(GrantTerms.used_at.is_not(None)))
            if t.used_at == now
        }
        live = [
            g
            for g in s.scalars(select(Grant).where(Grant.account_id == account))
            if (g.status == "active" or g.grant_id in used_now)
            and g.valid_from <= now < g.valid_to
            and action in g.actions.split(",")
            and g.scope_cluster in ("ALL", cluster)
            and rows <= g.max_rows
        ]
    assert live, f"allowed {step} without a covering grant"


def _assert_invariants(app, account: str) -> None:
    max_len = timedelta(hours=SETTINGS.max_grant_hours)
    with app.session() as s:
        for req in s.scalars(select(AccessRequest).where(AccessRequest.account_id == account)):
            rule = required_approvals(
                actions=req.actions.split(","),
                fields=req.scope_fields.split(","),
                cluster=req.scope_cluster,
                max_rows=req.max_rows,
                settings=SETTINGS,
            )
            assert req.required_approvals == rule.required
            approvals = list(
                s.scalars(
                    select(Approval)
                    .where(Approval.request_id == req.request_id, Approval.verdict == "approve")
                    .order_by(Approval.id)
                )
            )
            approvers = [a.approver for a in approvals]
            assert len(set(approvers)) == len(approvers), "approvals by distinct people"
            assert req.account_id not in approvers and req.requested_by not in approvers
            for who in approvers:
                assert s.get(Account, who).employer == "HA", "only staff approve"
            if req.status == "approved":
                g = s.get(Grant, req.grant_id)
                assert g is not None and len(approvers) >= req.required_approvals
                assert g.valid_from == approvals[-1].ts, "window starts at the final approval"
                assert g.valid_to - g.valid_from <= max_len
                assert g.valid_to - g.valid_from == timedelta(minutes=req.duration_minutes)
                terms = s.get(GrantTerms, g.grant_id)
                assert terms is not None and terms.single_use == req.single_use
                kinds = list(
                    s.scalars(select(GrantEvent.kind).where(GrantEvent.grant_id == g.grant_id))
                )
                assert "granted" in kinds, "history kept"
            else:
                assert req.grant_id is None or req.status != "pending"
