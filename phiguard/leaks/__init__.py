"""The leak scanner: read any dump, find the identifiers in it, link them to exactly the
affected patients, name the source (``docs/user/leaks.md``, ``docs/dev/leaks.md``).

Services other parts call: ``phiguard.leaks.scan.scan`` (run and record a scan),
``scan.get_scan`` / ``scan.affected_patient_ids`` (a recorded scan), and here, lazily,
:func:`patient_check` (the portal's "was my data leaked?") and :func:`request_code` /
:func:`answer_with_code` (the same check proven with a one-time code).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["answer_with_code", "patient_check", "request_code"]


def __getattr__(name: str) -> Any:  # lazy: importing phiguard.leaks stays cheap
    if name in __all__:
        return getattr(importlib.import_module("phiguard.leaks.check"), name)
    raise AttributeError(name)
