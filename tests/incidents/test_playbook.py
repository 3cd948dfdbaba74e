from __future__ import annotations

import json

import pytest

from phiguard.errors import InputError, NotFound
from phiguard.incidents import cases, playbook
from phiguard.incidents.settings import IncidentSettings


def test_shipped_template_follows_the_pcpd_five_steps() -> None:
    book = playbook.load("pcpd", IncidentSettings())
    assert book.steps == ["gather", "contain", "assess", "notify", "document"]
    assert {t.step for t in book.tasks} == set(playbook.PCPD_STEPS)


def test_tasks_are_due_relative_to_awareness(sqlite_hospital) -> None:
    app = sqlite_hospital.app
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(), cfg=IncidentSettings())
    with app.session() as s:
        tasks = {t.key: t for t in playbook.tasks(s, iid)}
    now = app.clock.now()
    assert (tasks["contain.access"].due - now).total_seconds() == 3600
    assert tasks["notify.pcpd"].owner == "privacy_officer"
    cases.complete_task(app, iid, "gather.facts", actor="dpo")
    with pytest.raises(NotFound):
        cases.complete_task(app, iid, "gather.nothing", actor="dpo")


def test_hospital_template_overrides_and_bad_ones_are_refused(tmp_path) -> None:
    (tmp_path / "pcpd.json").write_text(
        json.dumps(
            {
                "name": "pcpd",
                "title": "Ours",
                "steps": ["contain"],
                "tasks": [
                    {
                        "key": "k",
                        "step": "contain",
                        "title": "Pull the plug",
                        "owner": "ciso",
                        "due_hours": 0.5,
                    }
                ],
            }
        )
    )
    cfg = IncidentSettings(templates_dir=tmp_path)
    assert playbook.load("pcpd", cfg).title == "Ours"
    (tmp_path / "bad.json").write_text(
        json.dumps(
            {
                "name": "bad",
                "title": "x",
                "steps": ["contain"],
                "tasks": [
                    {"key": "k", "step": "notify", "title": "t", "owner": "o", "due_hours": 1}
                ],
            }
        )
    )
    with pytest.raises(InputError, match="steps the playbook does not list"):
        playbook.load("bad", cfg)
    (tmp_path / "neg.json").write_text(
        json.dumps(
            {
                "name": "neg",
                "title": "x",
                "steps": ["contain"],
                "tasks": [
                    {"key": "k", "step": "contain", "title": "t", "owner": "o", "due_hours": -1}
                ],
            }
        )
    )
    with pytest.raises(InputError, match="due_hours"):
        playbook.load("neg", cfg)
    with pytest.raises(NotFound):
        playbook.load("nothing", cfg)
    with pytest.raises(InputError):
        playbook.load("../etc", cfg)
