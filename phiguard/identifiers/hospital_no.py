"""Hospital file numbers.

No public source gives the format of Hong Kong public hospital file numbers, so the shape is a
setting (a regular expression). phiguard's default, ``HN`` + 8 digits + a check character, is
its own convention; its check character uses the HKID mod-11 scheme over the eight digits
(weights 9..2; 0 when r = 0, ``A`` when r = 1, else 11 - r) so one typo is always caught.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from phiguard.errors import InputError

DEFAULT_PATTERN = r"HN\d{8}[0-9A-Z]"


def hospital_no_check_char(digits: str) -> str:
    if len(digits) != 8 or not digits.isdigit():
        raise InputError("a hospital number check needs 8 digits")
    r = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
    return "0" if r == 0 else "A" if r == 1 else str(11 - r)


@dataclass(frozen=True)
class HospitalNumberFormat:
    pattern: str = DEFAULT_PATTERN
    check: bool = True
    _rx: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rx", re.compile(self.pattern))

    @property
    def uses_default_check(self) -> bool:
        return self.check and self.pattern == DEFAULT_PATTERN

    def normalise(self, text: str) -> str:
        """Upper-cased, spaces and dashes removed; raise :class:`InputError` if invalid."""
        value = re.sub(r"[\s-]", "", text).upper()
        if not self._rx.fullmatch(value):
            raise InputError("hospital number does not match the configured shape")
        if self.uses_default_check and hospital_no_check_char(value[2:10]) != value[10]:
            raise InputError("hospital number check character is wrong")
        return value

    def make(self, serial: int) -> str:
        """A valid default-shaped number for ``serial`` (used by the generator)."""
        digits = f"{serial:08d}"
        return f"HN{digits}{hospital_no_check_char(digits)}"
