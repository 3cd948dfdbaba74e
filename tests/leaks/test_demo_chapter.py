"""The demo chapter on a labelled dump: affected count, exposed fields, the export named."""

from __future__ import annotations

import shutil

from rich.console import Console

from phiguard.demo.steps import leaks as chapter
from phiguard.demo.story import Story


def test_chapter_scans_the_dump_and_leaves_the_result_for_the_incident(wapp, world, tmp_path):
    data = tmp_path / "input"
    (data / "leak").mkdir(parents=True)
    shutil.copy(world.dumps["csv"].path, data / "leak" / "dump.csv")
    labels = {"leak": {"patient_ids": sorted(world.dumps["csv"].patients), "query_id": "q-88812"}}
    out = Console(record=True, width=160)
    story = Story(wapp, out, data, labels)
    story.state["ingested"] = True
    chapter.run(story)
    text = out.export_text()
    assert "300 patients affected" in text
    assert "fields exposed: name, sex, hkid, hospital_no, procedure" in text
    assert "q-88812" in text and "matches the export the generator planted" in text
    assert "precision 1.0000, recall 1.0000" in text
    assert story.state["scan"]["affected_count"] == 300
