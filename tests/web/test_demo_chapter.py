"""The console chapter of ``phiguard demo`` without a terminal: it says how to start the
console and creates nothing (no password or MFA secret is printed or stored)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from phiguard.app import App
from phiguard.demo.steps import console as chapter
from phiguard.demo.story import Story
from phiguard.web.auth.users import Users


def test_chapter_without_serving_explains_and_creates_nothing(
    sqlite_app: App, tmp_path: Path
) -> None:
    buf = io.StringIO()
    story = Story(
        app=sqlite_app,
        out=Console(file=buf, width=120),
        data=tmp_path,
        labels={},
        serve=False,
        state={"alert_id": "a-0001", "incident_id": "INC-1"},
    )
    chapter.run(story)
    text = buf.getvalue()
    assert "phiguard users create-admin" in text and "phiguard serve" in text
    assert "/alerts/a-0001" in text and "/incidents/INC-1" in text
    assert "secret" not in text.lower()
    assert Users(sqlite_app).list() == []
