"""``phiguard incidents …``: open, view and advance breach incidents; reports and notices.

A thin caller of :mod:`phiguard.incidents`; every decision lives in the services.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from phiguard.cli._incidents import AsOpt, IdArg, actor, check_format, incidents_app, ts
from phiguard.cli.common import FormatOpt, HomeOpt, open_app, out, print_json
from phiguard.errors import UsageError
from phiguard.incidents import cases, clocks, containment, playbook, reports
from phiguard.incidents.settings import IncidentSettings


@incidents_app.command("open")
def open_(
    ctx: typer.Context,
    alert: Annotated[str | None, typer.Option("--alert", help="Open from a stored alert.")] = None,
    scan: Annotated[
        Path | None, typer.Option("--scan", help="Open from a `leaks scan --format json` file.")
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Open by hand with a title.")] = None,
    aware_at: Annotated[
        str | None, typer.Option("--aware-at", help="When the hospital became aware (default now).")
    ] = None,
    serious: Annotated[
        bool, typer.Option("--serious", help="Cap. 653 serious incident (core function disrupted).")
    ] = False,
    as_: AsOpt = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Open an incident from an alert, a leak scan (either or both), or by hand."""
    check_format(fmt)
    phg = open_app(ctx, home)
    iid = cases.open_from(
        phg,
        actor=actor(as_),
        alert_id=alert,
        scan=scan,
        title=title,
        aware_at=ts(aware_at, "--aware-at"),
        serious=serious,
    )
    summary = cases.summary(phg, iid)
    if fmt == "json":
        print_json(summary)
        return
    e = summary["enisa"]
    out.print(
        f"opened {iid}: {summary['affected_count']:,} affected patients, fields "
        f"{', '.join(summary['fields_exposed']) or 'unknown'}; ENISA {e['score']:g} ({e['band']})",
        markup=False,
    )


@incidents_app.command("list")
def list_(ctx: typer.Context, fmt: FormatOpt = "text", home: HomeOpt = None) -> None:
    """Every incident, newest first."""
    check_format(fmt)
    rows = cases.list_incidents(open_app(ctx, home))
    if fmt == "json":
        print_json(rows)
        return
    if not rows:
        out.print("no incidents")
    for r in rows:
        out.print(
            f"{r['incident_id']}  {r['status']:<10} {r['affected_count']:>8,} patients  "
            f"{r['band']:<9} {r['opened_at']}  {r['title']}",
            markup=False,
        )


def _print_clocks(cl: dict[str, Any]) -> None:
    for name, c in cl.items():
        if c["state"] == "not_applicable":
            out.print(f"  {name:<9} n/a       {c['basis']}", markup=False)
            continue
        left = c["remaining_hours"]
        extra = f"{left:+.1f} h" if left is not None else f"notified {c['notified_at']}"
        out.print(f"  {name:<9} {c['state']:<9} due {c['due']}  ({extra})", markup=False)


@incidents_app.command("show")
def show(
    ctx: typer.Context, incident_id: IdArg, fmt: FormatOpt = "text", home: HomeOpt = None
) -> None:
    """One incident: patients, fields, accounts, ENISA score, clocks, tasks, notices."""
    check_format(fmt)
    s = cases.summary(open_app(ctx, home), incident_id)
    if fmt == "json":
        print_json(s)
        return
    e = s["enisa"]
    out.print(f"{s['incident_id']} — {s['title']} [{s['status']}]", markup=False)
    out.print(f"  aware {s['aware_at']}, opened {s['opened_at']} from {s['source']}", markup=False)
    out.print(
        f"  {s['affected_count']:,} affected patients; fields: "
        f"{', '.join(s['fields_exposed']) or 'unknown'}",
        markup=False,
    )
    accts = ", ".join(f"{a['account_id']} ({a['vendor_id'] or 'staff'})" for a in s["accounts"])
    out.print(f"  accounts: {accts or 'none'}; vendor: {s['vendor_id'] or 'none'}", markup=False)
    out.print(
        f"  ENISA SE = {e['dpc']:g} × {e['ei']:g} + {e['cb']:g} = {e['score']:g} → {e['band']}",
        markup=False,
    )
    for k, f in e["factors"].items():
        out.print(f"    {k:<19} {f['value']:<5g} {f['origin']:<9} {f['rationale']}", markup=False)
    out.print("  clocks (Hong Kong time):")
    _print_clocks(s["clocks"])
    t = s["tasks"]
    out.print(f"  tasks: {t['open']} open ({t['overdue']} overdue), {t['done']} done", markup=False)
    if s["notices"]:
        out.print(
            "  notices: " + ", ".join(f"{k} {v:,}" for k, v in s["notices"].items()), markup=False
        )


@incidents_app.command("attach")
def attach(
    ctx: typer.Context,
    incident_id: IdArg,
    scan: Annotated[Path | None, typer.Option("--scan", help="A leak scan JSON.")] = None,
    patients: Annotated[
        Path | None, typer.Option("--patients", help="A file with one patient_id a line.")
    ] = None,
    fields: Annotated[str | None, typer.Option("--fields", help="Comma list of fields.")] = None,
    as_: AsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Attach affected patients (from a later scan or a list) and exposed fields."""
    ids: list[str] = []
    if patients is not None:
        try:
            lines = patients.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{patients}: cannot read ({exc})") from None
        ids = [x.strip() for x in lines if x.strip() and x.strip() != "patient_id"]
    n = cases.attach(
        open_app(ctx, home),
        incident_id,
        actor=actor(as_),
        scan=scan,
        patient_ids=ids,
        fields=(fields or "").split(","),
    )
    out.print(f"{incident_id}: {n:,} patients attached", markup=False)


@incidents_app.command("contain")
def contain(
    ctx: typer.Context,
    incident_id: IdArg,
    suspend_vendor: Annotated[
        str | None, typer.Option("--suspend-vendor", help="Suspend this vendor (kill switch).")
    ] = None,
    disable_account: Annotated[
        str | None, typer.Option("--disable-account", help="Disable one account.")
    ] = None,
    preserve_evidence: Annotated[
        bool, typer.Option("--preserve-evidence", help="Freeze a hash manifest of the audit log.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (goes to the audit log).")] = "",
    as_: AsOpt = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Containment: suspend the vendor, disable an account, preserve evidence."""
    check_format(fmt)
    if not (suspend_vendor or disable_account or preserve_evidence):
        raise UsageError("give --suspend-vendor V, --disable-account A or --preserve-evidence")
    phg, who = open_app(ctx, home), actor(as_)
    done: dict[str, Any] = {"incident_id": incident_id}
    if suspend_vendor:
        done["suspend_vendor"] = containment.suspend_vendor(
            phg, incident_id, suspend_vendor, actor=who, reason=reason
        )
    if disable_account:
        done["disable_account"] = containment.disable_account(
            phg, incident_id, disable_account, actor=who, reason=reason
        )
    if preserve_evidence:
        done["evidence"] = str(containment.preserve_evidence(phg, incident_id, actor=who))
    if fmt == "json":
        print_json(done)
        return
    if v := done.get("suspend_vendor"):
        out.print(
            f"vendor {v['vendor_id']} suspended: {v['accounts_disabled']} accounts disabled, "
            f"{v['grants_revoked']} grants revoked",
            markup=False,
        )
    if a := done.get("disable_account"):
        out.print(
            f"account {a['account_id']} disabled, {a['grants_revoked']} grants revoked",
            markup=False,
        )
    if ev := done.get("evidence"):
        out.print(f"evidence manifest: {ev}", markup=False)


@incidents_app.command("assess")
def assess(
    ctx: typer.Context,
    incident_id: IdArg,
    factor: Annotated[
        str,
        typer.Option(
            "--factor",
            help="dpc, ei, cb_confidentiality, cb_integrity, cb_availability or cb_malicious.",
        ),
    ],
    value: Annotated[float, typer.Option("--value", help="The factor's new value.")],
    rationale: Annotated[str, typer.Option("--rationale", help="Why (required).")],
    as_: AsOpt = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Overrule one ENISA factor, with the rationale."""
    check_format(fmt)
    res = cases.assess(open_app(ctx, home), incident_id, factor, value, rationale, actor=actor(as_))
    if fmt == "json":
        print_json(res)
    else:
        out.print(f"ENISA SE = {res['score']:g} ({res['band']})", markup=False)


@incidents_app.command("clocks")
def clocks_(
    ctx: typer.Context, incident_id: IdArg, fmt: FormatOpt = "text", home: HomeOpt = None
) -> None:
    """Regulator and recipient clocks, in Hong Kong time."""
    check_format(fmt)
    cl = cases.summary(open_app(ctx, home), incident_id)["clocks"]
    if fmt == "json":
        print_json(cl)
    else:
        _print_clocks(cl)


@incidents_app.command("remind")
def remind(ctx: typer.Context, fmt: FormatOpt = "text", home: HomeOpt = None) -> None:
    """Clocks that became due soon or overdue since the last reminder (each level once)."""
    check_format(fmt)
    phg = open_app(ctx, home)
    with phg.session() as s:
        due = clocks.reminders(s, phg.clock.now(), IncidentSettings())
    if fmt == "json":
        print_json(
            [
                {
                    "incident_id": r.incident_id,
                    "recipient": r.recipient,
                    "state": r.state,
                    "due": clocks.hkt(r.due),
                }
                for r in due
            ]
        )
        return
    for r in due:
        out.print(r.text, markup=False)


@incidents_app.command("notified")
def notified(
    ctx: typer.Context,
    incident_id: IdArg,
    recipient: Annotated[
        str, typer.Option("--recipient", help="pcpd, cap653, police, hkcert or supplier.")
    ],
    reference: Annotated[str, typer.Option("--reference", help="Their case number.")] = "",
    at: Annotated[str | None, typer.Option("--at", help="When (default now).")] = None,
    as_: AsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Record that a regulator or recipient was notified; stops its clock."""
    cases.mark_notified(
        open_app(ctx, home),
        incident_id,
        recipient,
        actor=actor(as_),
        reference=reference,
        at=ts(at, "--at"),
    )
    out.print(f"{incident_id}: {recipient} notified", markup=False)


@incidents_app.command("tasks")
def tasks(
    ctx: typer.Context, incident_id: IdArg, fmt: FormatOpt = "text", home: HomeOpt = None
) -> None:
    """The playbook tasks with owners and due times."""
    check_format(fmt)
    phg = open_app(ctx, home)
    now = phg.clock.now()
    with phg.session() as s:
        cases.get(s, incident_id)
        rows = [
            {
                "key": t.key,
                "step": t.step,
                "title": t.title,
                "owner": t.owner,
                "due": clocks.hkt(t.due),
                "status": t.status,
                "overdue": t.status == "open" and t.due < now,
            }
            for t in playbook.tasks(s, incident_id)
        ]
    if fmt == "json":
        print_json(rows)
        return
    for t in rows:
        flag = " OVERDUE" if t["overdue"] else ""
        out.print(
            f"{t['status']:<5} {t['key']:<18} {t['owner']:<16} due {t['due']}{flag}  {t['title']}",
            markup=False,
        )


@incidents_app.command("done")
def done(
    ctx: typer.Context,
    incident_id: IdArg,
    key: Annotated[str, typer.Argument(help="Task key, e.g. gather.facts.")],
    as_: AsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Mark a playbook task done."""
    cases.complete_task(open_app(ctx, home), incident_id, key, actor=actor(as_))
    out.print(f"{incident_id}: task {key} done", markup=False)


@incidents_app.command("note")
def note(
    ctx: typer.Context,
    incident_id: IdArg,
    text: Annotated[str, typer.Argument(help="The note.")],
    as_: AsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Add a note to the timeline."""
    cases.add_note(open_app(ctx, home), incident_id, text, actor=actor(as_))
    out.print(f"{incident_id}: note added", markup=False)


@incidents_app.command("timeline")
def timeline(
    ctx: typer.Context, incident_id: IdArg, fmt: FormatOpt = "text", home: HomeOpt = None
) -> None:
    """Everything that happened, from the audit log, alerts, scans, actions and notes."""
    check_format(fmt)
    rows = cases.timeline(open_app(ctx, home), incident_id)
    if fmt == "json":
        print_json(rows)
        return
    for e in rows:
        out.print(f"{e['ts']}  {e['kind']:<10} {e['text']}", markup=False)


@incidents_app.command("report")
def report(
    ctx: typer.Context,
    incident_id: IdArg,
    kind: Annotated[str, typer.Option("--kind", help="pcpd|cap653|hkcert|police|final.")],
    out_: Annotated[Path, typer.Option("--out", help="The PDF to write (JSON beside it).")],
    as_: AsOpt = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Write a regulator or post-incident report as PDF and JSON."""
    check_format(fmt)
    res = reports.write(open_app(ctx, home), incident_id, kind, out_, actor=actor(as_))
    if fmt == "json":
        print_json(res)
    else:
        out.print(f"{kind} report written: {res['pdf']} and {res['json']}", markup=False)


@incidents_app.command("close")
def close(ctx: typer.Context, incident_id: IdArg, as_: AsOpt = None, home: HomeOpt = None) -> None:
    """Close the incident."""
    cases.close(open_app(ctx, home), incident_id, actor=actor(as_))
    out.print(f"{incident_id} closed", markup=False)


# the patient-notice commands (notify, notices, receipt, letters, calllist, enquiry)
from phiguard.cli import _incident_notices  # noqa: E402, F401  (registers on incidents_app)


def register(app: typer.Typer) -> None:
    app.add_typer(incidents_app, name="incidents")
