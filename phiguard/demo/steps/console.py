"""Chapter: the console. The privacy office opens phiguard's web console on the demo home.

With ``story.serve`` (an interactive ``phiguard demo`` without ``--no-serve``) the console is
started here, on 127.0.0.1, with a demo privacy officer whose password and MFA secret are
printed once; otherwise the chapter says how to start it, and nothing is created.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import UTC, datetime

from phiguard.demo.story import Story

HOST = "127.0.0.1"
PORT = 8000
OFFICER = "demo-officer"
ADMIN = "demo-admin"


def _password() -> str:
    return "-".join(secrets.token_urlsafe(5) for _ in range(4))


def run(story: Story) -> None:
    story.chapter("8 · The console")
    home = story.app.home.root
    state = story.state
    pages = ["/  (dashboard: alerts over time, accesses by hour, top-risk accounts, clocks)"]
    if state.get("alert_id"):
        pages.append(f"/alerts/{state['alert_id']}  (triage the contractor alert)")
    if state.get("incident_id"):
        pages.append(f"/incidents/{state['incident_id']}  (timeline, ENISA, clocks, reports)")
    if state.get("scan_id"):
        pages.append(f"/scans/{state['scan_id']}  (the leaked dump: affected, fields, source)")
    pages.append("/verify  (public: is this letter really from the hospital?)")
    if not story.serve:
        story.say("  The same story, in the browser: every alert, incident, scan and grant above")
        story.say("  is in phiguard's web console. To open it:")
        story.say(f"    phiguard users create-admin --home {home}")
        story.say(f"    phiguard users create officer --role privacy_officer --home {home}")
        story.say(f"    phiguard serve --home {home}     # http://{HOST}:{PORT}/")
        story.say("  and then visit:")
        for p in pages:
            story.say(f"    {p}")
        return
    _serve(story, pages)


def _serve(story: Story, pages: list[str]) -> None:
    from phiguard.errors import Conflict
    from phiguard.web.auth import totp
    from phiguard.web.auth.users import Users
    from phiguard.web.config import WebSettings
    from phiguard.web.server import run as serve

    web = WebSettings()
    users = Users(story.app, web)
    password = _password()
    with contextlib.suppress(Conflict):  # a demo home re-used: the admin exists already
        users.create(ADMIN, "admin", _password(), actor="demo", display_name="Demo admin")
    try:
        officer = users.create(
            OFFICER, "privacy_officer", password, actor="demo", display_name="Demo privacy officer"
        )
        secret = officer.totp_secret
    except Conflict:
        officer = users.enrol_totp(OFFICER, actor="demo")
        secret = officer.totp_secret
        story.say("  (demo officer existed: its MFA was re-enrolled; its password is unchanged)")
        password = "(unchanged from the previous demo run)"  # noqa: S105 - a message
    url = f"http://{HOST}:{PORT}"
    story.say(f"  Console: [bold]{url}/[/bold]")
    story.say(f"  Log in as [bold]{OFFICER}[/bold] with password [bold]{password}[/bold]")
    story.say(f"  MFA secret (shown once, demo only): [bold]{secret}[/bold]")
    if secret:
        story.say(
            f"  … or type the current code: {totp.code_at(secret, datetime.now(UTC))} "
            "(it changes every 30 s; any authenticator app with the secret works)"
        )
    story.say("  Worth a look:")
    for p in pages:
        story.say(f"    {url}{p}")
    story.say("  Ctrl-C stops the console.")
    with contextlib.suppress(KeyboardInterrupt):
        serve(story.app, web, host=HOST, port=PORT)
