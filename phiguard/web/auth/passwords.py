"""Password hashing (argon2id) and the password policy (NIST SP 800-63B §3.1.1.2, ASVS 6.2).

Parameters are OWASP's minimum for argon2id — 19 MiB of memory, 2 passes, 1 lane — so one
guess costs an attacker who stole the table the same ~20 ms of work per core as it costs us
at login. ``needs_rehash`` lets stronger parameters be rolled out at the next login.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from importlib import resources
from itertools import pairwise

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from phiguard.errors import UsageError

MIN_LENGTH = 12
MAX_LENGTH = 128  # argon2 takes any length; the cap only stops multi-megabyte form posts
TIME_COST = 2
MEMORY_KIB = 19 * 1024
PARALLELISM = 1

_hasher = PasswordHasher(
    time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM, type=Type.ID
)
_LEET = str.maketrans(
    {
        "@": "a",
        "4": "a",
        "0": "o",
        "3": "e",
        "$": "s",
        "5": "s",
        "1": "i",
        "!": "i",
        "7": "t",
        "+": "t",
    }
)

#: a well-formed hash of a random password, verified against when the user does not exist so
#: that "no such user" and "wrong password" take the same time (no account enumeration)
_DUMMY = _hasher.hash("not-a-real-password-4f1c9b2e")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("phiguard.web").joinpath("data/common-passwords.txt").read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def _repetitive(pw: str) -> bool:
    """One short unit repeated (``abcabcabcabc``), or a run of one character, or a plain
    ascending/descending sequence such as ``3456789012``."""
    for unit in range(1, 5):
        if len(pw) % unit == 0 and pw[:unit] * (len(pw) // unit) == pw:
            return True
    steps = {(ord(b) - ord(a)) for a, b in pairwise(pw)}
    return steps <= {1, -9} or steps <= {-1, 9}


def check_password(password: str, *, username: str = "") -> None:
    """Raise :class:`UsageError` with a reason a person can act on when the password is weak.

    No composition rules (they make passwords worse, NIST §3.1.1.2); length, a list of
    common choices, repetition and the account's own name instead.
    """
    pw = unicodedata.normalize("NFKC", password)
    if len(pw) < MIN_LENGTH:
        raise UsageError(f"the password must be at least {MIN_LENGTH} characters long")
    if len(pw) > MAX_LENGTH:
        raise UsageError(f"the password must be at most {MAX_LENGTH} characters long")
    lowered = pw.lower()
    common = common_passwords()
    if lowered in common or lowered.translate(_LEET) in common:
        raise UsageError("that password is on the list of common or breached passwords")
    if _repetitive(lowered):
        raise UsageError("that password is a repetition or a simple sequence")
    name = username.strip().lower()
    if len(name) >= 4 and name in lowered:
        raise UsageError("the password must not contain the user name")
    if "phiguard" in lowered.translate(_LEET):
        raise UsageError("the password must not contain the name of this system")
