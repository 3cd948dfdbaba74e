"""``phiguard grants request|approve|deny|cancel|revoke|list|history``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phiguard.access import grants as svc
from phiguard.access.common import iso
from phiguard.cli._access import AsOpt, AtOpt, Fmt, actor, open_at
from phiguard.cli.common import HomeOpt, out, print_json

grants_app = typer.Typer(
    help="Time-limited, scoped access grants: request, approve, revoke.", no_args_is_help=True
)


@grants_app.command("request")
def request(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="Account the grant is for.")],
    cluster: Annotated[str, typer.Option(help="Cluster (HKEC … NTWC) or ALL.")],
    fields: Annotated[str, typer.Option(help="Comma list of data fields, or * for all.")],
    actions: Annotated[str, typer.Option(help="Comma list: read, search, print, export, update.")],
    max_rows: Annotated[int, typer.Option("--max-rows", help="Rows per query/export.")],
    purpose: Annotated[str, typer.Option(help="HL7 PurposeOfUse code, e.g. HOPERAT.")],
    ticket: Annotated[str, typer.Option(help="Change or incident ticket.")],
    reason: Annotated[str, typer.Option(help="Why the access is needed.")],
    duration: Annotated[str, typer.Option(help="How long from approval: 90m, 8h, 2d.")] = "8h",
    single_use: Annotated[
        bool, typer.Option("--single-use", help="The grant ends after its first use.")
    ] = False,
    as_: AsOpt = None,
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """File an access request; it needs one or two approvals from hospital staff."""
    app = open_at(ctx, home, at)
    req = svc.request_access(
        app,
        account_id=account,
        cluster=cluster,
        fields=fields,
        actions=actions,
        max_rows=max_rows,
        purpose=purpose,
        ticket=ticket,
        reason=reason,
        duration=duration,
        single_use=single_use,
        requested_by=as_,
    )
    if fmt == "json":
        print_json(
            {
                "request_id": req.request_id,
                "status": req.status,
                "required_approvals": req.required_approvals,
            }
        )
        return
    out.print(
        f"request {req.request_id} filed for {req.account_id}: needs "
        f"{req.required_approvals} approval(s) from hospital staff",
        markup=False,
    )


@grants_app.command("approve")
def approve(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request to approve.")],
    as_: AsOpt = None,
    comment: Annotated[str, typer.Option(help="Optional note.")] = "",
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Approve a request (never your own). The grant's window starts at the final approval."""
    app = open_at(ctx, home, at)
    res = svc.approve(app, request_id, actor(as_), comment)
    g = res.grant
    if fmt == "json":
        print_json(
            {
                "request_id": res.request.request_id,
                "approvals": res.approvals,
                "required_approvals": res.request.required_approvals,
                "grant": None if g is None else svc.grant_dict(g, None, app.clock.now()),
            }
        )
        return
    if g is None:
        out.print(
            f"approval {res.approvals} of {res.request.required_approvals} recorded for "
            f"{res.request.request_id}; waiting for another approver",
            markup=False,
        )
    else:
        out.print(
            f"grant {g.grant_id} active for {g.account_id} from {iso(g.valid_from)} to "
            f"{iso(g.valid_to)}",
            markup=False,
        )


@grants_app.command("deny")
def deny(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request to deny.")],
    reason: Annotated[str, typer.Option(help="Why.")],
    keep_grants: Annotated[
        bool,
        typer.Option(
            "--keep-grants", help="Do not revoke the account's live grants over the same scope."
        ),
    ] = False,
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Deny a request; by default the account's live grants over that scope are revoked too."""
    app = open_at(ctx, home, at)
    req, revoked = svc.deny(app, request_id, actor(as_), reason, revoke_existing=not keep_grants)
    tail = f"; revoked {', '.join(revoked)}" if revoked else ""
    out.print(f"request {req.request_id} denied{tail}", markup=False)


@grants_app.command("cancel")
def cancel(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request to withdraw.")],
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Withdraw a pending request."""
    app = open_at(ctx, home, at)
    req = svc.cancel(app, request_id, actor(as_))
    out.print(f"request {req.request_id} cancelled", markup=False)


@grants_app.command("revoke")
def revoke(
    ctx: typer.Context,
    grant_id: Annotated[str, typer.Argument(help="The grant to revoke.")],
    reason: Annotated[str, typer.Option(help="Why.")],
    as_: AsOpt = None,
    at: AtOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke a grant at once."""
    app = open_at(ctx, home, at)
    g = svc.revoke(app, grant_id, actor(as_), reason)
    out.print(f"grant {g.grant_id} of {g.account_id} revoked", markup=False)


@grants_app.command("list")
def list_(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    vendor: Annotated[str | None, typer.Option(help="Only this vendor's accounts.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only grants in this state (active, scheduled, expired, revoked, used), or "
            "requests in this state with --requests."
        ),
    ] = None,
    requests: Annotated[bool, typer.Option("--requests", help="List requests instead.")] = False,
    at: AtOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """List grants (or requests)."""
    app = open_at(ctx, home, at)
    if requests:
        rows = svc.list_requests(app, account_id=account, status=status)
        if fmt == "json":
            print_json(rows)
            return
        for r in rows:
            out.print(
                f"{r['request_id']}  {r['status']:<9} {r['account_id']:<14} "
                f"{r['actions']} on {r['scope_cluster']} ≤{r['max_rows']:,} rows  "
                f"approvals {len(r['approvals'])}/{r['required_approvals']}",
                markup=False,
            )
        return
    rows = svc.list_grants(app, account_id=account, status=status, vendor_id=vendor)
    if fmt == "json":
        print_json(rows)
        return
    if not rows:
        out.print("no grants")
    for g in rows:
        out.print(
            f"{g['grant_id']}  {g['status']:<9} {g['account_id']:<14} {g['actions']} on "
            f"{g['scope_cluster']} fields {g['scope_fields']} ≤{g['max_rows']:,} rows "
            f"{g['purpose']}  {g['valid_from']} → {g['valid_to']}",
            markup=False,
        )


@grants_app.command("history")
def history(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(help="A grant or request id.")],
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """The full history of a grant and the request it came from."""
    app = open_at(ctx, home, None)
    rows = svc.grant_history(app, ident)
    if fmt == "json":
        print_json(rows)
        return
    for e in rows:
        extra = {
            k: v for k, v in e.items() if k not in {"ts", "kind", "actor", "grant_id", "request_id"}
        }
        out.print(f"{e['ts']}  {e['kind']:<16} by {e['actor']:<12} {extra or ''}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(grants_app, name="grants")


__all__ = ["Path", "register"]
