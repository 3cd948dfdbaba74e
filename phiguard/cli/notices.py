"""``phiguard notices verify CODE``: is this notice's verification code genuine?

Exit 0 when genuine, 1 when not (or when the check is rate-limited). Only the code is
taken; the answer says nothing else about the notice, the patient or the incident.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from phiguard.cli.common import FormatOpt, HomeOpt, open_app, out, print_json
from phiguard.errors import UsageError
from phiguard.incidents import verification
from phiguard.incidents.settings import IncidentSettings

notices_app = typer.Typer(help="Patient notices: verify a code.", no_args_is_help=True)


def _client() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:operator"


@notices_app.command("verify")
def verify(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The code as printed, XXXX-XXXX-XXXX.")],
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Check a verification code from a letter, SMS or app notice (exit 0 genuine, 1 not)."""
    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")
    cfg = IncidentSettings()
    res = verification.check(open_app(ctx, home), code, client=_client(), cfg=cfg)
    if fmt == "json":
        print_json(res.as_dict(cfg))
    else:
        out.print(res.message(cfg), markup=False)
    if not res.genuine:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(notices_app, name="notices")
