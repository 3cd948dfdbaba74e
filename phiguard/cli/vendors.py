"""``phiguard vendors …``: vendors, contracts, assessments, findings, training, kill switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from phiguard.access import assessments, vendors
from phiguard.cli._access import AsOpt, AtOpt, Fmt, actor, day, open_at
from phiguard.cli.common import HomeOpt, out, print_json
from phiguard.errors import InputError, UsageError

vendors_app = typer.Typer(
    help="Vendors and their contracts, assessments and people; the kill switch.",
    no_args_is_help=True,
)


@vendors_app.command("list")
def list_(ctx: typer.Context, at: AtOpt = None, fmt: Fmt = "text", home: HomeOpt = None) -> None:
    """Every vendor with its status and contract."""
    rows = vendors.list_vendors(open_at(ctx, home, at))
    if fmt == "json":
        print_json(rows)
        return
    for v in rows:
        contract = (
            f"contract to {v['contract_end'] or 'open end'}"
            if v["under_contract"]
            else "NO CONTRACT IN FORCE"
        )
        out.print(
            f"{v['vendor_id']:<10} {v['status']:<10} {v['accounts']:>4} accounts  "
            f"{contract}  {v['name']}",
            markup=False,
        )


@vendors_app.command("show")
def show(
    ctx: typer.Context,
    vendor_id: Annotated[str, typer.Argument()],
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """One vendor: contracts, assessment and findings, accounts, grants, history."""
    info = vendors.vendor_summary(open_at(ctx, home, at), vendor_id)
    if fmt == "json":
        print_json(info)
        return
    out.print(f"{info['vendor_id']} {info['name']} — {info['status']}", markup=False)
    for k in info["contracts"]:
        out.print(
            f"  contract {k['contract_id']}: {k['start']} to {k['end'] or 'open'}"
            f"{' (in force)' if k['current'] else ''}, DPA "
            f"{'signed' if k['dpa_signed'] else 'NOT signed'}",
            markup=False,
        )
    a = info["assessment"]
    out.print(
        f"  assessment holds: {'yes until ' + str(a['holds_until']) if a['holds'] else 'NO'}",
        markup=False,
    )
    for f in a["findings"]:
        out.print(
            f"    finding {f['finding_id']} {f['severity']} due {f['due']} {f['status']}"
            f"{' OVERDUE' if f['overdue'] else ''}: {f['title']}",
            markup=False,
        )
    people = ", ".join(f"{x['account_id']} ({x['status']})" for x in info["accounts"])
    out.print(f"  accounts: {people or 'none'}", markup=False)
    live = [g for g in info["grants"] if g["status"] == "active"]
    out.print(f"  grants: {len(live)} active of {len(info['grants'])}", markup=False)


@vendors_app.command("add")
def add(
    ctx: typer.Context,
    vendor_id: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Option(help="Company name.")],
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Register a vendor."""
    v = vendors.register_vendor(open_at(ctx, home, at), vendor_id, name, actor(as_, required=False))
    out.print(f"vendor {v.vendor_id} registered", markup=False)


@vendors_app.command("contract")
def contract(
    ctx: typer.Context,
    vendor_id: Annotated[str, typer.Argument()],
    contract_id: Annotated[str, typer.Option("--contract-id", help="Contract reference.")],
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    end: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD (empty: open).")] = None,
    dpa: Annotated[
        bool, typer.Option("--dpa/--no-dpa", help="A data-processing agreement is signed.")
    ] = False,
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Record a data-processing contract (or change one)."""
    first = day(start, "--start")
    assert first is not None
    k = vendors.record_contract(
        open_at(ctx, home, at),
        vendor_id,
        contract_id=contract_id,
        start=first,
        end=day(end, "--end"),
        dpa_signed=dpa,
        actor=actor(as_, required=False),
    )
    out.print(
        f"contract {k.contract_id} of {k.vendor_id}: {k.start} to {k.end or 'open'}", markup=False
    )


@vendors_app.command("suspend")
def suspend(
    ctx: typer.Context,
    vendor_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why (goes to the audit log).")],
    as_: AsOpt = None,
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Kill switch: revoke every grant and disable every account of the vendor, at once."""
    res = vendors.suspend(
        open_at(ctx, home, at), vendor_id, reason=reason, actor=actor(as_, required=False)
    )
    if fmt == "json":
        print_json(res.as_dict())
        return
    again = " (was already suspended)" if res.already_suspended else ""
    out.print(
        f"vendor {res.vendor_id} suspended{again}: {len(res.grants_revoked)} grant(s) "
        f"revoked, {len(res.accounts_disabled)} account(s) disabled, "
        f"{len(res.requests_cancelled)} request(s) cancelled, "
        f"{len(res.breakglass_ended)} break-glass session(s) ended",
        markup=False,
    )


@vendors_app.command("resume")
def resume(
    ctx: typer.Context,
    vendor_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why.")],
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Lift a suspension. Restores nothing: accounts stay disabled, grants stay revoked."""
    v = vendors.resume(
        open_at(ctx, home, at), vendor_id, reason=reason, actor=actor(as_, required=False)
    )
    out.print(
        f"vendor {v.vendor_id} resumed; its accounts stay disabled and need "
        "`phiguard vendors enable-account`, and new grants must be requested",
        markup=False,
    )


@vendors_app.command("enable-account")
def enable_account(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why.")],
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Re-enable one account after its vendor was resumed."""
    a = vendors.enable_account(open_at(ctx, home, at), account_id, reason=reason, actor=actor(as_))
    out.print(f"account {a.account_id} enabled (it holds no grants)", markup=False)


@vendors_app.command("questionnaire")
def questionnaire(fmt: Fmt = "text") -> None:
    """The security-assessment questions and their weights."""
    values, questions = assessments.questionnaire()
    if fmt == "json":
        print_json({"answers": list(values), "questions": [q.__dict__ for q in questions]})
        return
    for q in questions:
        out.print(f"{q.id:<18} weight {q.weight:>4g}  {q.text}", markup=False)
    out.print(f"answers: {', '.join(values)}", markup=False)


@vendors_app.command("assess")
def assess(
    ctx: typer.Context,
    vendor_id: Annotated[str, typer.Argument()],
    answers: Annotated[
        Path,
        typer.Option(
            help='JSON file: {"answers": {"question_id": "yes|partial|no|na"}, '
            '"findings": [{"severity", "title", "due"}]}.'
        ),
    ],
    on: Annotated[str | None, typer.Option(help="Completion date (default today).")] = None,
    as_: AsOpt = None,
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Record a security assessment: scored questionnaire and findings with due dates."""
    doc = _read_json(answers)
    app = open_at(ctx, home, at)
    completed = day(on, "--on") or app.clock.now().date()
    a = assessments.record_assessment(
        app,
        vendor_id,
        answers=doc.get("answers") or {},
        assessor=actor(as_, required=False),
        completed_on=completed,
        findings=doc.get("findings") or [],
    )
    if fmt == "json":
        print_json(
            {
                "assessment_id": a.assessment_id,
                "score": a.score,
                "passed": a.passed,
                "valid_until": str(a.valid_until),
            }
        )
        return
    out.print(
        f"assessment {a.assessment_id} of {a.vendor_id}: score {a.score:g}/100, "
        f"{'passed' if a.passed else 'FAILED'}, valid until {a.valid_until}",
        markup=False,
    )


@vendors_app.command("finding-add")
def finding_add(
    ctx: typer.Context,
    assessment_id: Annotated[str, typer.Argument()],
    severity: Annotated[str, typer.Option(help="low, medium, high or critical.")],
    title: Annotated[str, typer.Option(help="What is wrong.")],
    due: Annotated[str | None, typer.Option(help="Fix by (default by severity).")] = None,
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Add a finding to an assessment. Open high/critical findings past due lapse it."""
    f = assessments.add_finding(
        open_at(ctx, home, at),
        assessment_id,
        severity=severity,
        title=title,
        due=day(due, "--due"),
        actor=actor(as_, required=False),
    )
    out.print(f"finding {f.finding_id} ({f.severity}) due {f.due}", markup=False)


@vendors_app.command("finding-close")
def finding_close(
    ctx: typer.Context,
    finding_id: Annotated[str, typer.Argument()],
    note: Annotated[str, typer.Option(help="How it was fixed.")] = "",
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Close a finding."""
    f = assessments.close_finding(
        open_at(ctx, home, at), finding_id, actor=actor(as_, required=False), note=note
    )
    out.print(f"finding {f.finding_id} closed on {f.closed_on}", markup=False)


@vendors_app.command("training")
def training(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Argument()],
    completed: Annotated[str, typer.Option(help="Completion date, YYYY-MM-DD.")],
    expires: Annotated[str, typer.Option(help="Expiry date, YYYY-MM-DD.")],
    course: Annotated[str | None, typer.Option(help="Course (default the required one).")] = None,
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Record a contractor's privacy training."""
    done, until = day(completed, "--completed"), day(expires, "--expires")
    if done is None or until is None:
        raise UsageError("--completed and --expires are required")
    t = assessments.record_training(
        open_at(ctx, home, at),
        account_id,
        course=course,
        completed_on=done,
        expires_on=until,
        actor=actor(as_, required=False),
    )
    out.print(f"training {t.course} of {t.account_id} valid until {t.expires_on}", markup=False)


@vendors_app.command("training-list")
def training_list(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Training records, with whether each is still valid."""
    rows = assessments.training_list(open_at(ctx, home, at), account)
    if fmt == "json":
        print_json(rows)
        return
    for t in rows:
        out.print(
            f"{t['account_id']:<14} {t['course']:<14} {t['completed_on']} → "
            f"{t['expires_on']} {'valid' if t['valid'] else 'EXPIRED'}",
            markup=False,
        )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object with 'answers'")
    return doc


def register(app: typer.Typer) -> None:
    app.add_typer(vendors_app, name="vendors")
