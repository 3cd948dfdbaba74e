"""``phiguard users …`` and ``phiguard tokens …``: console accounts and API tokens.

Thin callers of :mod:`phiguard.web.auth`; secrets (TOTP seeds, tokens, generated
passwords) are printed once, to stdout, and never logged.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

from phiguard.cli.common import FormatOpt, HomeOpt, open_app, out, print_json

ACTOR = "cli"

PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password", help="Initial password (prompted, hidden, when omitted).", show_default=False
    ),
]
GenerateOpt = Annotated[
    bool, typer.Option("--generate-password", help="Generate a strong password and print it once.")
]


def _password(password: str | None, generate: bool) -> tuple[str, bool]:
    if generate:
        return "-".join(secrets.token_urlsafe(6) for _ in range(4)), True
    if password is None:
        password = typer.prompt(
            "Password (12+ characters)", hide_input=True, confirmation_prompt=True
        )
    return password, False


def _print_enrolment(enrolment, generated: str | None) -> None:
    u = enrolment.user
    out.print(f"created {u.role} {u.username}")
    if generated:
        out.print(f"password (shown once): {generated}", markup=False)
    if enrolment.totp_secret:
        out.print("MFA enrolment — shown once; add it to an authenticator app now:")
        out.print(f"  secret: {enrolment.totp_secret}", markup=False)
        out.print(f"  uri:    {enrolment.otpauth_uri}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    users = typer.Typer(
        help="Console users: create, list, enable/disable, re-enrol MFA.", no_args_is_help=True
    )
    tokens = typer.Typer(
        help="API tokens for clinical systems and the patients' app.", no_args_is_help=True
    )
    app.add_typer(users, name="users")
    app.add_typer(tokens, name="tokens")

    from phiguard.web.auth.users import Users

    @users.command("create-admin")
    def create_admin(
        ctx: typer.Context,
        username: Annotated[str, typer.Argument()] = "admin",
        account: Annotated[
            str | None, typer.Option("--account", help="The admin's hospital account id.")
        ] = None,
        password: PasswordOpt = None,
        generate_password: GenerateOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Create an admin with TOTP enrolment (prints the secret and otpauth URI once)."""
        phg = open_app(ctx, home)
        pw, generated = _password(password, generate_password)
        enrolment = Users(phg).create(
            username, "admin", pw, actor=ACTOR, with_totp=True, account_id=account
        )
        _print_enrolment(enrolment, pw if generated else None)

    @users.command("create")
    def create(
        ctx: typer.Context,
        username: str,
        role: Annotated[
            str,
            typer.Option(
                "--role", help="admin, privacy_officer, security_analyst, vendor_manager, auditor"
            ),
        ],
        display_name: Annotated[str, typer.Option("--name")] = "",
        account: Annotated[
            str | None,
            typer.Option(
                "--account",
                help="The user's hospital account id (needed to approve "
                "grants and certify reviews).",
            ),
        ] = None,
        mfa: Annotated[
            bool | None,
            typer.Option("--mfa/--no-mfa", help="Enrol TOTP (always for admin, privacy_officer)."),
        ] = None,
        password: PasswordOpt = None,
        generate_password: GenerateOpt = False,
        home: HomeOpt = None,
    ) -> None:
        """Create a console user."""
        phg = open_app(ctx, home)
        pw, generated = _password(password, generate_password)
        enrolment = Users(phg).create(
            username,
            role,
            pw,
            actor=ACTOR,
            display_name=display_name,
            with_totp=mfa,
            account_id=account,
        )
        _print_enrolment(enrolment, pw if generated else None)

    @users.command("list")
    def list_(ctx: typer.Context, fmt: FormatOpt = "text", home: HomeOpt = None) -> None:
        """List console users."""
        phg = open_app(ctx, home)
        rows = Users(phg).list()
        if fmt == "json":
            print_json(
                [
                    {
                        "username": u.username,
                        "role": u.role,
                        "status": u.status,
                        "account_id": u.account_id,
                        "mfa": u.mfa,
                        "security_keys": u.security_keys,
                        "last_login_at": u.last_login_at,
                    }
                    for u in rows
                ]
            )
            return
        for u in rows:
            mfa = "totp" if u.mfa else "-"
            out.print(f"{u.username:24} {u.role:18} {u.status:9} mfa={mfa}", markup=False)

    @users.command("disable")
    def disable(ctx: typer.Context, username: str, home: HomeOpt = None) -> None:
        """Disable a user and end their sessions."""
        Users(open_app(ctx, home)).set_status(username, "disabled", actor=ACTOR)
        out.print(f"disabled {username}")

    @users.command("enable")
    def enable(ctx: typer.Context, username: str, home: HomeOpt = None) -> None:
        """Enable a disabled user."""
        Users(open_app(ctx, home)).set_status(username, "active", actor=ACTOR)
        out.print(f"enabled {username}")

    @users.command("reset-mfa")
    def reset_mfa(ctx: typer.Context, username: str, home: HomeOpt = None) -> None:
        """Issue a new TOTP secret (the old one stops working); printed once."""
        enrolment = Users(open_app(ctx, home)).enrol_totp(username, actor=ACTOR)
        out.print(f"new MFA enrolment for {username} — shown once:")
        out.print(f"  secret: {enrolment.totp_secret}", markup=False)
        out.print(f"  uri:    {enrolment.otpauth_uri}", markup=False, soft_wrap=True)

    from phiguard.web.auth.tokens import ApiTokens

    @tokens.command("create")
    def token_create(
        ctx: typer.Context,
        name: str,
        scopes: Annotated[
            str, typer.Option("--scopes", help="Comma list, e.g. events:write,decide")
        ],
        days: Annotated[int | None, typer.Option("--days")] = None,
        home: HomeOpt = None,
    ) -> None:
        """Create a scoped API token; the token is printed once."""
        issued = ApiTokens(open_app(ctx, home)).create(name, scopes, actor=ACTOR, days=days)
        out.print(
            f"token {issued.view.token_id} for {name} ({', '.join(issued.view.scopes)})"
            " — shown once:",
            markup=False,
        )
        typer.echo(issued.secret)

    @tokens.command("rotate")
    def token_rotate(ctx: typer.Context, token_id: str, home: HomeOpt = None) -> None:
        """Replace a token's secret; the old one stops working at once."""
        issued = ApiTokens(open_app(ctx, home)).rotate(token_id, actor=ACTOR)
        out.print(f"token {issued.view.token_id} replaces {token_id} — shown once:")
        typer.echo(issued.secret)

    @tokens.command("revoke")
    def token_revoke(ctx: typer.Context, token_id: str, home: HomeOpt = None) -> None:
        """Revoke a token."""
        ApiTokens(open_app(ctx, home)).revoke(token_id, actor=ACTOR)
        out.print(f"revoked {token_id}")

    @tokens.command("list")
    def token_list(ctx: typer.Context, fmt: FormatOpt = "text", home: HomeOpt = None) -> None:
        """List API tokens (never their secrets)."""
        rows = ApiTokens(open_app(ctx, home)).list()
        if fmt == "json":
            print_json(
                [
                    {
                        "token_id": t.token_id,
                        "name": t.name,
                        "scopes": t.scopes,
                        "active": t.active,
                        "expires_at": t.expires_at,
                        "last_used_at": t.last_used_at,
                    }
                    for t in rows
                ]
            )
            return
        for t in rows:
            state = "active" if t.active else "revoked"
            out.print(f"{t.token_id}  {t.name:24} {state:8} {','.join(t.scopes)}", markup=False)
