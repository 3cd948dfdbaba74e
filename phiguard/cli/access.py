"""``phiguard access decide|sweep``, ``access breakglass …``, ``access review …``,
``access policies …``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from phiguard.access import breakglass as bg
from phiguard.access import reviews
from phiguard.access.common import iso, settings_of
from phiguard.access.lifecycle import sweep as run_sweep
from phiguard.access.pdp import decide as pdp_decide
from phiguard.app import App
from phiguard.cli._access import AsOpt, AtOpt, Fmt, actor, open_at, when
from phiguard.cli.common import HomeOpt, out, print_json

access_app = typer.Typer(
    help="Policy decisions, break-glass, access reviews, the sweep.", no_args_is_help=True
)
bg_app = typer.Typer(
    help="Time-boxed emergency access with a mandatory reason and review.", no_args_is_help=True
)
review_app = typer.Typer(
    help="Access-review campaigns: certify or revoke each grant.", no_args_is_help=True
)
policies_app = typer.Typer(help="The Cedar policies behind every decision.", no_args_is_help=True)
access_app.add_typer(bg_app, name="breakglass")
access_app.add_typer(review_app, name="review")
access_app.add_typer(policies_app, name="policies")


@access_app.command("decide")
def decide(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="The account asking.")],
    action: Annotated[str, typer.Option(help="read, search, print, export or update.")],
    patient: Annotated[str | None, typer.Option(help="Patient id (PMI).")] = None,
    cluster: Annotated[str | None, typer.Option(help="Cluster of the records, or ALL.")] = None,
    fields: Annotated[str | None, typer.Option(help="Comma list of fields to return.")] = None,
    rows: Annotated[int | None, typer.Option(help="Records the query/export returns.")] = None,
    purpose: Annotated[str | None, typer.Option(help="HL7 PurposeOfUse code.")] = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """May ACCOUNT do ACTION now? Prints {"decision", "reasons", "obligations"}; exits 0 either
    way (2 on bad usage)."""
    app = open_at(ctx, home, at)
    result = pdp_decide(
        app,
        account=account,
        action=action,
        patient=patient,
        cluster=cluster,
        fields=fields,
        rows=rows,
        purpose=purpose,
    )
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")


@access_app.command("sweep")
def sweep(ctx: typer.Context, at: AtOpt = None, fmt: Fmt = "text", home: HomeOpt = None) -> None:
    """Record what time decided: expire grants and requests, revoke on contract end, training
    expiry or assessment lapse, escalate overdue break-glass reviews, close due campaigns."""
    report = run_sweep(open_at(ctx, home, at))
    if fmt == "json":
        print_json(report.as_dict())
        return
    out.print(
        f"{len(report.expired)} grant(s) expired, {len(report.revoked)} revoked, "
        f"{len(report.requests_expired)} request(s) expired, {len(report.escalated)} "
        f"break-glass review(s) escalated, {len(report.campaigns_closed)} campaign(s) "
        "closed",
        markup=False,
    )
    for grant_id, why in report.revoked.items():
        out.print(f"  revoked {grant_id}: {why}", markup=False)
    for session in report.escalated:
        out.print(f"  ESCALATED break-glass {session}: review overdue", markup=False)


# -- break-glass -------------------------------------------------------------------------------
@bg_app.command("start")
def bg_start(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="Who breaks the glass.")],
    reason: Annotated[str, typer.Option(help="Mandatory clinical reason.")],
    patient: Annotated[
        str | None, typer.Option(help="The patient (default: any in the cluster).")
    ] = None,
    cluster: Annotated[
        str | None, typer.Option(help="Cluster (default the patient's or the account's).")
    ] = None,
    minutes: Annotated[int | None, typer.Option(help="How long (default the maximum).")] = None,
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Start a break-glass session (read/search/print only, time-boxed, reviewed later)."""
    app = open_at(ctx, home, at)
    s = bg.start(app, account, reason=reason, patient_id=patient, cluster=cluster, minutes=minutes)
    if fmt == "json":
        print_json(bg.as_dict(s, app.clock.now()))
        return
    out.print(
        f"break-glass {s.session_id} for {s.account_id} until {iso(s.ends_at)}; "
        f"review due by {iso(s.review_due)}",
        markup=False,
    )


@bg_app.command("end")
def bg_end(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument()],
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """End a break-glass session early."""
    s = bg.end(open_at(ctx, home, at), session_id, actor(as_))
    out.print(f"break-glass {s.session_id} ended", markup=False)


@bg_app.command("review")
def bg_review(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument()],
    outcome: Annotated[str, typer.Option(help="justified or unjustified.")],
    note: Annotated[str, typer.Option(help="What the reviewer found.")],
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Review a break-glass session (someone other than its account)."""
    s = bg.review(
        open_at(ctx, home, at), session_id, reviewer=actor(as_), outcome=outcome, note=note
    )
    out.print(f"break-glass {s.session_id} reviewed: {s.outcome}", markup=False)


@bg_app.command("list")
def bg_list(
    ctx: typer.Context,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue reviews.")] = False,
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Break-glass sessions and their review state."""
    rows = bg.listing(open_at(ctx, home, at), overdue_only=overdue)
    if fmt == "json":
        print_json(rows)
        return
    for r in rows:
        state = "active" if r["active"] else "ended"
        review = r["outcome"] or ("OVERDUE" if r["review_overdue"] else f"due {r['review_due']}")
        out.print(
            f"{r['session_id']}  {r['account_id']:<12} {state:<6} review {review}"
            f"{' (escalated)' if r['escalated'] else ''}  {r['reason']}",
            markup=False,
        )


# -- access reviews ----------------------------------------------------------------------------
@review_app.command("start")
def review_start(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Campaign name, e.g. 2026-Q2 contractors.")],
    deadline: Annotated[str | None, typer.Option(help="ISO time; default in 14 days.")] = None,
    vendor: Annotated[str | None, typer.Option(help="Only this vendor's grants.")] = None,
    as_: AsOpt = None,
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Open a campaign over every live contractor grant (or one vendor's)."""
    app = open_at(ctx, home, at)
    camp = reviews.start_campaign(
        app,
        name=name,
        owner=actor(as_),
        deadline=when(deadline) if deadline else None,
        vendor_id=vendor,
    )
    info = reviews.campaign_items(app, camp.campaign_id)
    if fmt == "json":
        print_json(info)
        return
    out.print(
        f"campaign {camp.campaign_id} opened with {len(info['items'])} item(s); "
        f"deadline {info['deadline']}",
        markup=False,
    )


@review_app.command("show")
def review_show(
    ctx: typer.Context,
    campaign_id: Annotated[str, typer.Argument()],
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """A campaign's items and decisions."""
    info = reviews.campaign_items(open_at(ctx, home, None), campaign_id)
    if fmt == "json":
        print_json(info)
        return
    out.print(
        f"{info['campaign_id']} {info['name']} — {info['status']}, deadline {info['deadline']}",
        markup=False,
    )
    for i in info["items"]:
        out.print(
            f"  {i['item_id']}  {i['account_id']:<12} reviewer {i['reviewer']:<10} {i['decision']}",
            markup=False,
        )


@review_app.command("list")
def review_list(ctx: typer.Context, fmt: Fmt = "text", home: HomeOpt = None) -> None:
    """All campaigns."""
    rows = reviews.list_campaigns(open_at(ctx, home, None))
    if fmt == "json":
        print_json(rows)
        return
    for r in rows:
        out.print(
            f"{r['campaign_id']}  {r['status']:<6} deadline {r['deadline']}  {r['name']}",
            markup=False,
        )


@review_app.command("certify")
def review_certify(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument()],
    comment: Annotated[str, typer.Option(help="Optional note.")] = "",
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Certify that a grant is still needed."""
    item = reviews.certify(open_at(ctx, home, at), item_id, reviewer=actor(as_), comment=comment)
    out.print(f"{item.item_id} certified", markup=False)


@review_app.command("revoke")
def review_revoke(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why.")],
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke a grant under review."""
    item = reviews.revoke_item(open_at(ctx, home, at), item_id, reviewer=actor(as_), comment=reason)
    out.print(f"{item.item_id} revoked", markup=False)


@review_app.command("close")
def review_close(
    ctx: typer.Context,
    campaign_id: Annotated[str, typer.Argument()],
    force: Annotated[bool, typer.Option("--force", help="Close before the deadline.")] = False,
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Close a campaign: every item not certified is revoked."""
    res = reviews.close_campaign(
        open_at(ctx, home, at), campaign_id, actor=actor(as_, required=False), force=force
    )
    out.print(
        f"campaign {res['campaign_id']} closed; {len(res['revoked'])} uncertified grant(s) revoked",
        markup=False,
    )


# -- policies ----------------------------------------------------------------------------------
@policies_app.command("check")
def policies_check(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Argument(help="Folder of extra *.cedar policies (default: HOME/policies)."),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Parse and validate the built-in and extra policies against the schema."""
    from phiguard.access.policy import load

    if directory is None:
        directory = _policy_dir(open_at(ctx, home, None))
    store = load(directory)
    permits = sum(p.effect == "permit" for p in store.policies.values())
    out.print(
        f"{len(store.policies)} policies valid ({permits} permit, "
        f"{len(store.policies) - permits} forbid); fingerprint {store.fingerprint}; "
        f"engine {'python (built-in only)' if store.builtin_only else 'cedar'}",
        markup=False,
    )


@policies_app.command("show")
def policies_show(ctx: typer.Context, fmt: Fmt = "text", home: HomeOpt = None) -> None:
    """List every loaded policy with its effect and reason."""
    from phiguard.access.policy import load

    store = load(_policy_dir(open_at(ctx, home, None)))
    rows = [
        {"id": p.policy_id, "effect": p.effect, "reason": p.reason, "source": p.source}
        for p in store.policies.values()
    ]
    if fmt == "json":
        print_json(rows)
        return
    for r in rows:
        out.print(f"{r['effect']:<7} {r['id']:<22} {r['reason']}  [{r['source']}]", markup=False)


def _policy_dir(app: App) -> Path:
    return settings_of(app).policy_dir or app.home.root / "policies"


def register(app: typer.Typer) -> None:
    app.add_typer(access_app, name="access")
