"""``phiguard demo``: the April 2026 contractor leak, replayed end to end on a synthetic
hospital."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from phiguard.app import App
from phiguard.demo.steps import CHAPTERS


@dataclass
class Story:
    app: App
    out: Console
    data: Path  # the generated hospital: patients.csv, events.parquet, labels.json …
    labels: dict[str, Any]
    serve: bool = False
    state: dict[str, Any] = field(default_factory=dict)

    def chapter(self, title: str) -> None:
        self.out.rule(f"[bold]{title}")

    def say(self, text: str) -> None:
        self.out.print(text)


def tell(story: Story) -> None:
    for name in CHAPTERS:
        try:
            module = importlib.import_module(f"phiguard.demo.steps.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"phiguard.demo.steps.{name}":
                raise
            continue  # that part of phiguard is not built yet
        module.run(story)
