"""The demo's audit chapter: signed checkpoint shown, log verified, a tampered copy caught."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from phiguard.app import App
from phiguard.demo.steps import audit as chapter
from phiguard.demo.story import Story


def test_chapter_shows_checkpoint_verifies_and_catches_tampering(
    sqlite_app: App, tmp_path: Path
) -> None:
    sqlite_app.audit.append_batch(
        "CMS",
        [b"E%d,CMS,%d,2026-04-02T09:00:00+08:00,dr-chan,read,P1" % (i, i) for i in range(300)],
    )
    out = Console(record=True, width=120)
    story = Story(app=sqlite_app, out=out, data=tmp_path, labels={})
    chapter.run(story)
    text = out.export_text()
    assert "\u2014 phiguard.local/audit/" in text  # the signature line of the checkpoint
    assert "VERIFIED" in text and "CAUGHT" in text
    assert story.state["log_size"] == 301
    assert sqlite_app.audit.size == 301  # the tampering happened on a copy
