"""``phiguard gateway …``: run the data-access gateway, issue credentials, set a grant's
gateway terms, list and replay recorded sessions."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated, Any

import typer

from phiguard.cli._access import AsOpt, Fmt, actor
from phiguard.cli.common import HomeOpt, err, open_app, out, print_json

gateway_app = typer.Typer(
    help="The data-access gateway: contractors reach patient databases only through phiguard.",
    invoke_without_command=True,
)

ListenOpt = Annotated[
    str | None, typer.Option("--listen", help="HOST:PORT to listen on (default 127.0.0.1:6432).")
]
UpstreamOpt = Annotated[
    str | None,
    typer.Option("--upstream", help="postgresql:// URL of the real database and its service role."),
]


def _settings(listen: str | None = None, upstream: str | None = None) -> Any:
    from phiguard.gateway.settings import GatewaySettings

    s = GatewaySettings()
    updates = {k: v for k, v in (("listen", listen), ("upstream", upstream)) if v}
    return s.model_copy(update=updates) if updates else s


@gateway_app.callback()
def run(
    ctx: typer.Context, listen: ListenOpt = None, upstream: UpstreamOpt = None, home: HomeOpt = None
) -> None:
    """Listen for PostgreSQL clients and relay them, under their grant, to the database."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {**(ctx.obj or {}), "gw_listen": listen, "gw_upstream": upstream}
        return
    from phiguard.gateway.server import Gateway

    app = open_app(ctx, home)
    gateway = Gateway(app, _settings(listen, upstream))

    async def main() -> None:
        host, port = await gateway.start()
        out.print(
            f"phiguard gateway listening on {host}:{port} → "
            f"{gateway.upstream.host}:{gateway.upstream.port}/{gateway.upstream.database}"
            f"{' (TLS)' if gateway.ssl else ''}",
            markup=False,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await gateway.stop()

    asyncio.run(main())


@gateway_app.command("credential")
def credential(
    ctx: typer.Context,
    grant: Annotated[str, typer.Option("--grant", help="The grant to work under.")],
    as_: AsOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Print a connection string valid until the grant ends (shown once; only a verifier is
    kept)."""
    from phiguard.gateway.credentials import issue

    app = open_app(ctx, home)
    s = _settings((ctx.obj or {}).get("gw_listen"), (ctx.obj or {}).get("gw_upstream"))
    issued = issue(app, grant, actor=actor(as_, required=False))
    host, _, port = s.listen.rpartition(":")
    database = _database(s.upstream)
    url = issued.url(host or "127.0.0.1", int(port), database, tls=bool(s.tls_cert))
    expires = issued.expires_at.astimezone().isoformat(timespec="seconds")
    if fmt == "json":
        print_json(
            {
                "url": url,
                "grant_id": issued.grant_id,
                "account_id": issued.account_id,
                "credential_id": issued.credential_id,
                "expires_at": expires,
            }
        )
        return
    out.print(url, markup=False, soft_wrap=True)
    err.print(
        f"valid until {expires} (the end of grant {issued.grant_id}); it dies with the grant",
        markup=False,
    )


@gateway_app.command("terms")
def terms(
    ctx: typer.Context,
    grant: Annotated[str, typer.Option("--grant", help="The grant.")],
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Name an exception: ddl, or function:NAME (repeatable)."),
    ] = None,
    over_limit: Annotated[
        str | None,
        typer.Option("--over-limit", help="cut (default) or refuse results over the row limit."),
    ] = None,
    as_: AsOpt = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Set what a grant allows through the gateway beyond its scope (staff only)."""
    from phiguard.gateway.credentials import set_terms

    result = set_terms(
        open_app(ctx, home), grant, actor=actor(as_), allow=allow, over_limit=over_limit
    )
    if fmt == "json":
        print_json(result)
        return
    out.print(
        f"grant {result['grant_id']}: allow {', '.join(result['allow']) or 'nothing extra'}"
        f"; over the row limit: {result['over_limit']}",
        markup=False,
    )


@gateway_app.command("sessions")
def sessions(
    ctx: typer.Context,
    grant: Annotated[str | None, typer.Option("--grant", help="Only this grant.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Only this account.")] = None,
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """Recorded gateway sessions, newest first."""
    from phiguard.gateway.session import list_sessions

    rows = list_sessions(open_app(ctx, home), grant_id=grant, account_id=account)
    if fmt == "json":
        print_json(rows)
        return
    if not rows:
        out.print("no gateway sessions recorded")
    for r in rows:
        out.print(
            f"{r['session_id']}  {r['account_id']:<10} grant {r['grant_id']}  "
            f"{r['started_at']} → {r['ended_at'] or 'live'}  {r['statements']} statements"
            f", {r['refused']} refused, {r['rows']:,} rows"
            f"{'  (' + r['end_reason'] + ')' if r['end_reason'] else ''}",
            markup=False,
        )


@gateway_app.command("replay")
def replay(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    fmt: Fmt = "text",
    home: HomeOpt = None,
) -> None:
    """What a contractor ran and what came back, from the audit log."""
    from phiguard.gateway.session import replay as do_replay

    info = do_replay(open_app(ctx, home), session)
    if fmt == "json":
        print_json(info)
        return
    out.print(
        f"session {info['session_id']}: {info['account_id']} under grant "
        f"{info['grant_id']} from {info['client_ip']} "
        f"({'TLS' if info['tls'] else 'no TLS'}), {info['started_at']} → "
        f"{info['ended_at'] or 'live'}",
        markup=False,
    )
    if info["end_reason"]:
        out.print(f"  ended: {info['end_reason']}", markup=False)
    for st in info["steps"]:
        if st.get("missing"):
            out.print("  (a statement whose log entry is missing)")
            continue
        masked = f", masked {', '.join(st['masked'])}" if st.get("masked") else ""
        out.print(
            f"  #{st['n']} {st['ts']} {st['decision'].upper():<5} {st['kind']}: "
            f"{st['rows']:,} rows, {st['bytes']:,} bytes, {st['patients']:,} patients"
            f"{masked}  [log #{st['leaf_index']}]",
            markup=False,
        )
        out.print(f"      {' '.join((st.get('sql') or '').split())[:200]}", markup=False)
        for r in st.get("reasons") or []:
            out.print(f"      reason: {r}", markup=False)


def _database(upstream: str | None) -> str:
    if not upstream:
        return "postgres"
    from phiguard.gateway.upstream import Upstream

    return Upstream.parse(upstream).database


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
