"""The demo chapter: the contractor's night through the gateway, alerted by the live rules."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from phiguard.app import App
from phiguard.demo.story import Story
from phiguard.detection import alerts
from phiguard.settings import Settings


def test_chapter_refuses_alerts_and_ends_the_session(
    tmp_path: Path, pg_admin: str, monkeypatch
) -> None:
    from phiguard.demo.steps import gateway

    monkeypatch.setattr(gateway, "ADMIN", pg_admin)
    app = App.init(Settings(home=tmp_path / "home"))
    buf = io.StringIO()
    story = Story(app, Console(file=buf, width=200, color_system=None), tmp_path, {})
    try:
        gateway.run(story)
    finally:
        app.close()
    text = buf.getvalue()
    assert text.count("refused") >= 3 and "'***'" in text
    assert "ALERT" in text and "denied_burst" in text and "was refused 3 times" in text
    assert "vendor V-GW is suspended" in text
    app = App.open(Settings(home=tmp_path / "home"))
    try:
        raised = [alerts.get(app, a) for a in story.state["gateway_alerts"]]
    finally:
        app.close()
    assert any("denied_burst" in (a.hits or {}) for a in raised)
    assert all(a.account_id == "gw-eng-07" and a.vendor_id == "V-GW" for a in raised)
