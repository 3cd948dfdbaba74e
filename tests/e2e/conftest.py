"""Browser tests: Playwright for Python driving Debian's chromium against a real console
(uvicorn in a thread, on 127.0.0.1) over a small synthetic hospital."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from phiguard.app import App
from phiguard.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "lantern-harbour-orchid-42"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Console:
    url: str
    app: App
    hospital: Any
    users: dict[str, str | None]  # username -> TOTP secret
    shots: Path


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (see .ci/apt-packages)")
    from phiguard.web.auth.users import Users
    from phiguard.web.config import WebSettings
    from phiguard.web.server import start_in_thread
    from tests.web.hospital import build

    root = tmp_path_factory.mktemp("e2e")
    app = App.init(Settings(home=root / "home"))
    hospital = build(app, root / "data")
    users = Users(app)
    made = {}
    for name, role, account in (
        ("po-chan", "privacy_officer", "hkec-dr-0001"),
        ("vm-wong", "vendor_manager", "kcc-it-0001"),
        ("admin", "admin", None),
    ):
        made[name] = users.create(
            name, role, PASSWORD, actor="test", account_id=account, display_name=name
        ).totp_secret
    server = start_in_thread(app, WebSettings(token_cache_seconds=0))
    shots = SCREENSHOTS if os.environ.get("PHIGUARD_SCREENSHOTS") else root / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        yield Console(server.url, app, hospital, made, shots)
    finally:
        server.stop()
        app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()
