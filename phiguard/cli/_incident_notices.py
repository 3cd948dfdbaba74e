"""``phiguard incidents notify|notices|receipt|letters|calllist|enquiry``: telling the
affected patients, tracking delivery, and the hotline log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from phiguard.cli._incidents import AsOpt, IdArg, actor, check_format, incidents_app
from phiguard.cli.common import FormatOpt, HomeOpt, err, open_app, out, print_json
from phiguard.incidents import enquiries, letters, notify
from phiguard.incidents.settings import IncidentSettings


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
    check_format(fmt)
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
    check_format(fmt)
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
    check_format(fmt)
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
    check_format(fmt)
    res = enquiries.log_enquiry(
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
