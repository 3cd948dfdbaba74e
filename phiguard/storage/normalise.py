"""Value parsing for reference-data imports. Each function raises ``ValueError`` with a
reason a person can act on; the reason never repeats the value (it may be an identifier)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime

from phiguard.clock import parse_ts

CLUSTERS = frozenset({"HKEC", "HKWC", "KCC", "KEC", "KWC", "NTEC", "NTWC"})
ACTIONS = frozenset({"read", "search", "print", "export", "update"})
SEXES = frozenset({"M", "F", "U"})
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def required(row: dict[str, str | None], column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise ValueError(f"{column} is empty")
    return value


def optional(row: dict[str, str | None], column: str) -> str | None:
    value = (row.get(column) or "").strip()
    return value or None


def boolean(value: str | None, column: str) -> bool:
    v = (value or "").strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{column} is not true/false")


def iso_date(value: str | None, column: str, *, allow_empty: bool = True) -> date | None:
    v = (value or "").strip()
    if not v:
        if allow_empty:
            return None
        raise ValueError(f"{column} is empty")
    try:
        return date.fromisoformat(v[:10])
    except ValueError:
        raise ValueError(f"{column} is not a YYYY-MM-DD date") from None


def timestamp(value: str | None, column: str) -> datetime:
    v = (value or "").strip()
    if not v:
        raise ValueError(f"{column} is empty")
    try:
        return parse_ts(v)
    except ValueError:
        raise ValueError(f"{column} is not an ISO-8601 timestamp") from None


def cluster(value: str | None, column: str = "cluster", *, allow_all: bool = False) -> str:
    v = (value or "").strip().upper()
    if v in CLUSTERS or (allow_all and v == "ALL"):
        return v
    raise ValueError(
        f"{column} is not one of {', '.join(sorted(CLUSTERS))}" + (" or ALL" if allow_all else "")
    )


def sex(value: str | None) -> str:
    v = (value or "U").strip().upper() or "U"
    if v not in SEXES:
        raise ValueError("sex is not M, F or U")
    return v


def phone(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    if len(value) == 8 and value.isdigit():
        return value
    digits = re.sub(r"[\s\-()]", "", value)
    if digits.startswith("+852"):
        digits = digits[4:]
    elif digits.startswith("852") and len(digits) == 11:
        digits = digits[3:]
    if not (digits.isdigit() and len(digits) == 8):
        raise ValueError("phone is not an 8-digit Hong Kong number")
    return digits


def surname(name_en: str | None) -> str | None:
    """The surname of a surname-first English name (``CHAN Tai Man`` → ``CHAN``).

    When exactly one token is all capitals it is taken as the surname wherever it stands
    (``Tai Man CHAN``); otherwise the first token is.
    """
    if not name_en:
        return None
    tokens = name_en.replace(",", " ").split()
    if not tokens:
        return None
    caps = [t for t in tokens if t.isupper() and len(t) > 1]
    return (caps[0] if len(caps) == 1 else tokens[0]).upper()


_NON_WORD = re.compile(r"[\W_]+")


def address_key(address: str | None) -> str | None:
    """Address normalised for equality: NFKC, upper case, punctuation and runs of space folded."""
    if not address or not address.strip():
        return None
    a = address if address.isascii() else unicodedata.normalize("NFKC", address)
    return _NON_WORD.sub(" ", a.upper()).strip() or None


def csv_list(value: str | None, column: str, allowed: frozenset[str] | None = None) -> str:
    v = (value or "").strip()
    if not v:
        raise ValueError(f"{column} is empty")
    if v == "*":
        return "*"
    items = [i.strip().lower() for i in v.split(",") if i.strip()]
    if allowed is not None:
        unknown = sorted(set(items) - allowed)
        if unknown:
            raise ValueError(f"{column} has unknown value(s): {', '.join(unknown)}")
    return ",".join(dict.fromkeys(items))
