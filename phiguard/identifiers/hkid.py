"""Hong Kong identity card numbers.

An HKID is one or two capital letters, six digits and a check character (0-9 or A). People
write it ``A123456(3)``, ``A1234563``, ``A123456 3``, in lower case, with full-width brackets,
or masked (``A123***(3)``). phiguard's canonical form is the unbracketed upper-case string
``A1234563``; the display form is ``A123456(3)``.

The check character: letters count A=10 … Z=35, a one-letter prefix is padded with a leading
space worth 36, weights 9..2 run over the eight positions, r = sum mod 11 and the check is
0 when r = 0, ``A`` when r = 1, otherwise 11 - r. A random well-shaped string passes one time
in eleven, so the checksum is a filter, not a proof of existence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phiguard.errors import InputError

MASK_CHARS = "*X#"
_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)
# Letters, six digit-or-mask positions, an optional separator, the check (maybe bracketed).
_SHAPE = re.compile(
    r"^\s*([A-Z]{1,2})\s?([0-9*X#]{6})\s*(?:[(（\[]\s*([0-9A*X#])\s*[)）\]]|([0-9A*X#]))\s*$"
)


def _value(ch: str) -> int:
    return ord(ch) - 55 if "A" <= ch <= "Z" else ord(ch) - 48


def hkid_check_char(prefix: str, digits: str) -> str:
    """The check character for ``prefix`` (1-2 letters) and ``digits`` (6 digits)."""
    prefix = prefix.upper()
    if not (1 <= len(prefix) <= 2 and prefix.isalpha() and len(digits) == 6 and digits.isdigit()):
        raise InputError(f"cannot compute an HKID check character for {prefix!r}/{digits!r}")
    padded = (" " + prefix if len(prefix) == 1 else prefix) + digits
    total = sum(
        (36 if ch == " " else _value(ch)) * w for ch, w in zip(padded, _WEIGHTS, strict=True)
    )
    r = total % 11
    return "0" if r == 0 else "A" if r == 1 else str(11 - r)


@dataclass(frozen=True, slots=True)
class Hkid:
    """A parsed HKID. ``digits`` and ``check`` may hold ``*`` where the source masked them."""

    prefix: str
    digits: str
    check: str

    @property
    def masked(self) -> bool:
        return "*" in self.digits or self.check == "*"

    @property
    def valid(self) -> bool:
        """True when unmasked and the check character is right."""
        return not self.masked and hkid_check_char(self.prefix, self.digits) == self.check

    @property
    def canonical(self) -> str:
        return f"{self.prefix}{self.digits}{self.check}"

    @property
    def display(self) -> str:
        return f"{self.prefix}{self.digits}({self.check})"

    def __str__(self) -> str:  # never log the full number by accident: show it masked
        return f"{self.prefix}{self.digits[:1]}*****(*)"


def parse_hkid(text: str) -> Hkid:
    """Parse any common spelling; raise :class:`InputError` when the shape is wrong.

    Masked numbers parse (their known characters are kept) but are never ``valid``.
    A full number with a wrong check character parses too; callers decide with ``valid``.
    """
    m = _SHAPE.match(text.upper().replace("\u3000", " "))
    if not m:
        raise InputError("not an HKID: wrong shape")
    prefix, digits, bracketed, bare = m.groups()
    check = bracketed or bare
    digits = "".join("*" if c in MASK_CHARS else c for c in digits)
    check = "*" if check in MASK_CHARS else check
    return Hkid(prefix, digits, check)


_FAST = re.compile(r"([A-Z]{1,2})(\d{6})([0-9A])")
_CHAR_VALUE = {**{chr(c): c - 55 for c in range(65, 91)}, **{str(d): d for d in range(10)}}


def canonical_hkid_fast(text: str) -> str | None:
    """Hot-path validation for bulk imports: the canonical form of a full valid HKID, or
    ``None`` when the text is not one (callers fall back to :func:`parse_hkid` for reasons)."""
    t = text.upper().replace("(", "").replace(")", "").replace(" ", "")
    m = _FAST.fullmatch(t)
    if m is None:
        return None
    prefix, digits, check = m.groups()
    v = _CHAR_VALUE
    total = (36 * 9 + v[prefix] * 8) if len(prefix) == 1 else (v[prefix[0]] * 9 + v[prefix[1]] * 8)
    for ch, w in zip(digits, (7, 6, 5, 4, 3, 2), strict=True):
        total += v[ch] * w
    r = total % 11
    expected = "0" if r == 0 else "A" if r == 1 else str(11 - r)
    return t if check == expected else None


def normalise_hkid(text: str) -> str:
    """The canonical form of a full, valid HKID; raise :class:`InputError` otherwise."""
    hkid = parse_hkid(text)
    if hkid.masked:
        raise InputError("HKID is masked")
    if not hkid.valid:
        raise InputError("HKID check character is wrong")
    return hkid.canonical
