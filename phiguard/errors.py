"""One exception tree for phiguard.

::

    PhiguardError                  base; never raised itself
    ├── UsageError                 bad arguments or settings            (CLI exit 2, HTTP 400)
    │   └── InputError             an input file or value cannot be read (CLI exit 2, HTTP 422)
    ├── HomeError                  the home is missing, locked or not a phiguard home (exit 2)
    ├── NotFound                   a named object does not exist        (exit 2, HTTP 404)
    ├── Conflict                   the request clashes with current state (exit 1, HTTP 409)
    ├── PermissionDenied           the caller may not do this           (exit 1, HTTP 403)
    ├── IntegrityError             verification failed: tampering, gaps  (exit 1, HTTP 409)
    ├── CryptoError                a key is missing or a ciphertext does not authenticate
    └── DurabilityError            an fsync or write failed; the writer has stopped

The CLI maps these to exit codes in ``phiguard.cli.main`` and the web layer to HTTP
statuses in ``phiguard.web``; nowhere else decides.
"""

from __future__ import annotations


class PhiguardError(Exception):
    """Base of every error phiguard raises on purpose."""

    exit_code = 1


class UsageError(PhiguardError):
    exit_code = 2


class InputError(UsageError):
    """An input file or value is unreadable or malformed."""


class HomeError(PhiguardError):
    exit_code = 2


class NotFound(PhiguardError):
    exit_code = 2


class Conflict(PhiguardError):
    exit_code = 1


class PermissionDenied(PhiguardError):
    exit_code = 1


class IntegrityError(PhiguardError):
    exit_code = 1


class CryptoError(PhiguardError):
    exit_code = 1


class DurabilityError(PhiguardError):
    exit_code = 1
