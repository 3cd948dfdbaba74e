"""`audit verify` with worker processes gives exactly the report of a single pass.

The home of the tampering tests (three periods, one erased, several segments, actions and
checkpoints) is verified intact and after random damage, once inline and once on a pool of
forked workers with tiny tasks (so every frame run and tree range is a task of its own).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from phiguard.audit import verify_work as vw
from phiguard.audit.log import AuditLog
from phiguard.audit.verify import Report, verify_log
from tests.audit.conftest import reopen
from tests.audit.test_tamper import _files, _flip, pristine  # noqa: F401  (a fixture)


def _verify(home: Path, workers: int) -> Report:
    app = reopen(home)
    try:
        return verify_log(AuditLog(app), workers=workers)
    finally:
        app.close()


def _same(home: Path) -> list[str]:
    one = _verify(home, 1)
    two = _verify(home, 2)
    assert [str(f) for f in two.findings] == [str(f) for f in one.findings]
    assert (two.entries, two.actions, two.erased_entries, two.checkpoints) == (
        one.entries,
        one.actions,
        one.erased_entries,
        one.checkpoints,
    )
    return [str(f) for f in one.findings if f.error]


@pytest.fixture(autouse=True)
def tiny_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vw, "TASK_ENTRIES", 1)
    monkeypatch.setattr(vw, "TASK_NODES", 3)


def test_an_intact_log_verifies_the_same_in_parallel(pristine: Path) -> None:  # noqa: F811
    assert _same(pristine) == []
    assert _verify(pristine, 2).ok


def test_damage_is_reported_identically_in_parallel(pristine: Path, tmp_path: Path) -> None:  # noqa: F811
    rng = random.Random(5)
    files = [
        p.relative_to(pristine) for p in _files(pristine) if p.parts[-2] in ("journal", "tree")
    ]
    for trial in range(24):
        home = tmp_path / f"copy{trial}"
        shutil.copytree(pristine, home)
        rel = rng.choice(files)
        size = (home / rel).stat().st_size
        if trial % 3 == 2:
            os.truncate(home / rel, rng.randrange(size))
        else:
            _flip(home / rel, rng.randrange(size), 1 << rng.randrange(8))
        assert _same(home), f"damage to {rel} went unnoticed"
        shutil.rmtree(home)
