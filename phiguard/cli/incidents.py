"""``phiguard incidents …``: open, view and advance breach incidents; reports and notices.

A thin caller of :mod:`phiguard.incidents`; every decision lives in the services.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from phiguard.cli.common import FormatOpt, HomeOpt, err, open_app, out, print_json
from phiguard.clock import parse_ts
from phiguard.errors import UsageError
from phiguard.incidents import cases, clocks, containment, letters, notify, playbook, reports
from phiguard.incidents.settings import IncidentSettings

incidents_app = typer.Typer(
    help="Breach incidents: open, contain, assess, clocks, reports, patient notices.",
    no_args_is_help=True,
)
IdArg = Annotated[str, typer.Argument(help="Incident id, e.g. INC-2026-0001.")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Who is acting (default $PHIGUARD_ACTOR or the login name)."),
]


def actor(value: str | None) -> str:
    chosen = (value or os.environ.get("PHIGUARD_ACTOR") or "").strip()
    if chosen:
        return chosen
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):
        return "operator"


def _ts(text: str | None, what: str) -> Any:
    if not text:
        return None
    try:
        return parse_ts(text)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not an ISO-8601 time") from None


def _check_format(fmt: str) -> None:
    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")


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
    _check_format(fmt)
    phg = open_app(ctx, home)
    iid = cases.open_from(
        phg,
        actor=actor(as_),
        alert_id=alert,
        scan=scan,
        title=title,
        aware_at=_ts(aware_at, "--aware-at"),
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
    _check_format(fmt)
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
    _check_format(fmt)
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
    _check_format(fmt)
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
    _check_format(fmt)
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
    _check_format(fmt)
    cl = cases.summary(open_app(ctx, home), incident_id)["clocks"]
    if fmt == "json":
        print_json(cl)
    else:
        _print_clocks(cl)


@incidents_app.command("remind")
def remind(ctx: typer.Context, fmt: FormatOpt = "text", home: HomeOpt = None) -> None:
    """Clocks that became due soon or overdue since the last reminder (each level once)."""
    _check_format(fmt)
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
        at=_ts(at, "--at"),
    )
    out.print(f"{incident_id}: {recipient} notified", markup=False)


@incidents_app.command("tasks")
def tasks(
    ctx: typer.Context, incident_id: IdArg, fmt: FormatOpt = "text", home: HomeOpt = None
) -> None:
    """The playbook tasks with owners and due times."""
    _check_format(fmt)
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
    _check_format(fmt)
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
    _check_format(fmt)
    res = reports.write(open_app(ctx, home), incident_id, kind, out_, actor=actor(as_))
    if fmt == "json":
        print_json(res)
    else:
        out.print(f"{kind} report written: {res['pdf']} and {res['json']}", markup=False)


@incidents_app.command("notify")
def notify_(
    ctx: typer.Context,
    incident_id: IdArg,
    channels: Annotated[
        str,
        typer.Option("--channels", help="Comma list of app, sms, post, phone (in fallback order)."),
    ] = "app,sms,post,phone",
    queue_only: Annotated[bool, typer.Option("--queue-only", help="Queue, do not send.")] = False,
    as_: AsOpt = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Notify the affected patients; run again to resume after an outage (nothing twice)."""
    _check_format(fmt)
    phg, who, cfg = open_app(ctx, home), actor(as_), IncidentSettings()
    wanted = notify.parse_channels(channels)
    transports = {} if queue_only else notify.configured_transports(cfg, wanted)
    result: dict[str, Any] = {
        "incident_id": incident_id,
        "resumed": [],
        "campaign": None,
        "dispatch": None,
    }
    for cid in notify.open_campaigns(phg, incident_id) if transports else []:
        result["resumed"].append(
            notify.dispatch(phg, cid, transports, actor=who, cfg=cfg).as_dict()
        )
    camp = notify.create_campaign(phg, incident_id, wanted, actor=who, cfg=cfg)
    result["campaign"] = camp.as_dict()
    if camp.campaign_id and transports:
        result["dispatch"] = notify.dispatch(
            phg, camp.campaign_id, transports, actor=who, cfg=cfg
        ).as_dict()
    missing = [c for c in wanted if c in ("app", "sms") and c not in transports]
    result["waiting_for_transport"] = [] if queue_only else missing
    result["status"] = notify.status(phg, incident_id)["by_channel"]
    interrupted = [
        d["interrupted"]
        for d in [*result["resumed"], result["dispatch"] or {}]
        if d.get("interrupted")
    ]
    if fmt == "json":
        print_json(result)
    else:
        q = camp.queued
        out.print(
            f"{incident_id}: "
            + (
                f"campaign {camp.campaign_id} queued "
                + ", ".join(f"{c} {n:,}" for c, n in q.items())
                if camp.campaign_id
                else "no new patients to notify on these channels"
            )
            + f"; {camp.deferred:,} wait for another channel, "
            f"{camp.already_notified:,} already notified",
            markup=False,
        )
        for d in [*result["resumed"], *([result["dispatch"]] if result["dispatch"] else [])]:
            out.print(
                f"  campaign {d['campaign_id']}: sent "
                + (", ".join(f"{c} {n:,}" for c, n in d["sent"].items()) or "nothing"),
                markup=False,
            )
        if "post" in wanted:
            out.print(
                f"  letters: `phiguard incidents letters {incident_id} --out FILE.pdf`",
                markup=False,
            )
        if camp.call_list or "phone" in wanted:
            out.print(
                f"  call list: `phiguard incidents calllist {incident_id} --out FILE.csv`",
                markup=False,
            )
        for c in result["waiting_for_transport"]:
            err.print(
                f"phiguard: no {c} gateway configured (PHIGUARD_INCIDENTS_"
                f"{'PUSH' if c == 'app' else 'SMS'}_URL); those notices stay queued",
                markup=False,
            )
    if interrupted:
        err.print(
            f"phiguard: interrupted: {interrupted[0]}; run the same command again to "
            "resume (nothing is sent twice)",
            markup=False,
        )
        raise typer.Exit(1)


@incidents_app.command("notices")
def notices(
    ctx: typer.Context, incident_id: IdArg, fmt: FormatOpt = "text", home: HomeOpt = None
) -> None:
    """Delivery status per channel and state."""
    _check_format(fmt)
    st = notify.status(open_app(ctx, home), incident_id)
    if fmt == "json":
        print_json(st)
        return
    for ch, states in st["by_channel"].items():
        out.print(
            f"{ch:<6} " + ", ".join(f"{k} {v:,}" for k, v in sorted(states.items())), markup=False
        )


@incidents_app.command("receipt")
def receipt(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(help="Delivery id, e.g. INC-…-000001:sms:0.1.")],
    state: Annotated[str, typer.Option("--state", help="delivered, failed or returned.")],
    as_: AsOpt = None,
    home: HomeOpt = None,
) -> None:
    """Record a delivery receipt, returned mail or a call outcome (failures fall back)."""
    res = notify.record_receipt(open_app(ctx, home), message_id, state, actor=actor(as_))
    out.print(f"{message_id}: notice now {res['notice_state']} on {res['channel']}", markup=False)


@incidents_app.command("letters")
def letters_(
    ctx: typer.Context,
    incident_id: IdArg,
    out_: Annotated[Path, typer.Option("--out", help="The merged PDF to write.")],
    csv_: Annotated[
        Path | None, typer.Option("--csv", help="Mail-house CSV (default: beside the PDF).")
    ] = None,
    as_: AsOpt = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Every queued letter in one print-ready PDF plus the mail house's CSV."""
    _check_format(fmt)
    res = letters.write_letters(
        open_app(ctx, home), incident_id, out_, actor=actor(as_), csv_path=csv_
    )
    if fmt == "json":
        print_json(res.as_dict())
    else:
        out.print(
            f"{res.letters:,} letters ({res.pages:,} pages): {res.pdf}; mail house CSV {res.csv}",
            markup=False,
        )


@incidents_app.command("calllist")
def calllist(
    ctx: typer.Context,
    incident_id: IdArg,
    out_: Annotated[Path, typer.Option("--out", help="The CSV to write.")],
    as_: AsOpt = None,
    home: HomeOpt = None,
) -> None:
    """The telephone call list (patients no other channel reached), with the script."""
    n = letters.write_call_list(open_app(ctx, home), incident_id, out_, actor=actor(as_))
    out.print(f"{n:,} patients on the call list: {out_}", markup=False)


@incidents_app.command("enquiry")
def enquiry(
    ctx: typer.Context,
    incident_id: IdArg,
    topic: Annotated[str, typer.Option("--topic", help="e.g. am-i-affected, verify-letter.")],
    channel: Annotated[
        str, typer.Option("--channel", help="hotline, email, walk_in, letter, app.")
    ] = "hotline",
    notice: Annotated[str | None, typer.Option("--notice", help="Notice number quoted.")] = None,
    code: Annotated[str | None, typer.Option("--code", help="Verification code read out.")] = None,
    outcome: Annotated[str, typer.Option("--outcome", help="What was done.")] = "",
    as_: AsOpt = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Log a hotline call (or other enquiry) against the incident."""
    _check_format(fmt)
    res = cases.log_enquiry(
        open_app(ctx, home),
        incident_id,
        agent=actor(as_),
        topic=topic,
        channel=channel,
        outcome=outcome,
        notice_ref=notice,
        code=code,
    )
    if fmt == "json":
        print_json(res)
    else:
        extra = (
            ""
            if res["code_genuine"] is None
            else ("; code GENUINE" if res["code_genuine"] else "; code NOT genuine")
        )
        out.print(f"{incident_id}: enquiry logged{extra}", markup=False)


@incidents_app.command("close")
def close(ctx: typer.Context, incident_id: IdArg, as_: AsOpt = None, home: HomeOpt = None) -> None:
    """Close the incident."""
    cases.close(open_app(ctx, home), incident_id, actor=actor(as_))
    out.print(f"{incident_id} closed", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(incidents_app, name="incidents")
