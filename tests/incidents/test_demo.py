from __future__ import annotations

import io
import json

from rich.console import Console

from phiguard.demo.steps import incidents as chapter
from phiguard.demo.story import Story


def test_demo_chapter_tells_the_response(sqlite_hospital) -> None:
    app = sqlite_hospital.app
    scan = json.loads(sqlite_hospital.scan().read_text()) | {"scan_id": "s-0001"}
    buf = io.StringIO()
    story = Story(
        app=app,
        out=Console(file=buf, width=200),
        data=sqlite_hospital.tmp,
        labels={},
        state={"scan": scan},
    )
    chapter.run(story)
    text = buf.getvalue()
    assert story.state["incident_id"] == "INC-2026-0001"
    for needle in (
        "vendor V012 suspended",
        "= 5 → very high",
        "cap653",
        "PCPD report",
        "bilingual letters",
        "→ genuine",
        "→ not_genuine",
    ):
        assert needle in text, needle
    exports = {p.name for p in app.home.exports.iterdir()}
    assert {
        "INC-2026-0001-pcpd.pdf",
        "INC-2026-0001-cap653.pdf",
        "INC-2026-0001-letters.pdf",
    } <= exports


def test_demo_chapter_is_quiet_without_an_alert_or_scan(sqlite_app, tmp_path) -> None:
    buf = io.StringIO()
    chapter.run(Story(app=sqlite_app, out=Console(file=buf), data=tmp_path, labels={}))
    assert buf.getvalue() == ""
