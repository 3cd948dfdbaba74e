"""INTERIM: replaced by the tamper-evident log (issue 3). Keeps the App contract working:

``AuditLog.open(app)``, ``initialise()``, ``record_action(tag, actor=, subject=, detail=)``,
``close()``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phiguard.app import App


@dataclass
class AuditLog:
    app: App

    @classmethod
    def open(cls, app: App) -> AuditLog:
        return cls(app)

    def initialise(self) -> None:
        pass

    def record_action(self, tag: str, *, actor: str, subject: str, detail: dict[str, Any]) -> None:
        line = {"ts": self.app.clock.now().isoformat(), "tag": tag, "actor": actor,
                "subject": subject, "detail": detail}
        with (self.app.home.audit / "actions.interim.jsonl").open("a") as f:
            f.write(json.dumps(line, default=str) + "\n")

    def close(self) -> None:
        pass
