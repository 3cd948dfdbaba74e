"""phiguard: protects patient data in a public hospital network from the people allowed near it.

The small public library surface; everything else is reached through its domain package.
Names are resolved lazily so that ``import phiguard.identifiers`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from phiguard.app import App
    from phiguard.errors import PhiguardError
    from phiguard.settings import Settings

_LAZY = {"App": "phiguard.app", "PhiguardError": "phiguard.errors", "Settings": "phiguard.settings"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["App", "PhiguardError", "Settings", "__version__"]
