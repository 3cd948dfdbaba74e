"""Playbooks: the tasks an incident gets when it opens, kept as data (``templates/NAME.json``).

The shipped ``pcpd`` template follows the PCPD's five steps — gather information, contain,
assess the risk of harm, consider notification, document. A hospital edits a copy in its
own ``templates_dir`` (a setting); the file is validated when it is loaded, so a broken
template is refused with one line before any task is created.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from phiguard.errors import Conflict, InputError, NotFound
from phiguard.incidents.models import Task
from phiguard.incidents.settings import IncidentSettings

SHIPPED = Path(__file__).parent / "templates"
PCPD_STEPS = ("gather", "contain", "assess", "notify", "document")


class TaskTemplate(BaseModel):
    key: str = Field(min_length=1, max_length=64)
    step: str
    title: str = Field(min_length=1)
    owner: str = Field(min_length=1, max_length=64)
    due_hours: float = Field(gt=0)


class Playbook(BaseModel):
    name: str
    title: str
    steps: list[str] = Field(min_length=1)
    tasks: list[TaskTemplate] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Playbook:
        keys = [t.key for t in self.tasks]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"duplicate task keys: {', '.join(dupes)}")
        unknown = sorted({t.step for t in self.tasks} - set(self.steps))
        if unknown:
            raise ValueError(f"tasks name steps the playbook does not list: {', '.join(unknown)}")
        return self


def load(name: str, cfg: IncidentSettings) -> Playbook:
    """The hospital's own template wins over the shipped one of the same name."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise InputError(f"playbook name {name!r} must be letters, digits, - or _")
    candidates = [cfg.templates_dir / f"{name}.json"] if cfg.templates_dir else []
    candidates.append(SHIPPED / f"{name}.json")
    for path in candidates:
        if not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"playbook {path}: not readable JSON ({exc})") from None
        try:
            return Playbook.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "template"
            raise InputError(f"playbook {path}: {where}: {first['msg']}") from None
    raise NotFound(f"no playbook template named {name!r}")


def instantiate(s: Session, incident_id: str, book: Playbook, opened: datetime) -> list[Task]:
    tasks = [
        Task(
            incident_id=incident_id,
            step=t.step,
            key=t.key,
            title=t.title,
            owner=t.owner,
            due=opened + timedelta(hours=t.due_hours),
            status="open",
        )
        for t in book.tasks
    ]
    s.add_all(tasks)
    s.flush()
    return tasks


def tasks(s: Session, incident_id: str) -> list[Task]:
    q = select(Task).where(Task.incident_id == incident_id).order_by(Task.due, Task.id)
    return list(s.scalars(q))


def complete(
    s: Session, incident_id: str, key: str, *, at: datetime, by: str, status: str = "done"
) -> Task:
    task = s.scalars(select(Task).where(Task.incident_id == incident_id, Task.key == key)).first()
    if task is None:
        raise NotFound(f"incident {incident_id} has no task {key!r}")
    if task.status != "open":
        raise Conflict(f"task {key} is already {task.status}")
    task.status, task.done_at, task.done_by = status, at, by
    s.flush()
    return task


def auto_complete(s: Session, incident_id: str, key: str, *, at: datetime, by: str) -> None:
    """Tick a task off when phiguard itself did the work (contain, report, notify)."""
    task = s.scalars(select(Task).where(Task.incident_id == incident_id, Task.key == key)).first()
    if task is not None and task.status == "open":
        task.status, task.done_at, task.done_by = "done", at, by
