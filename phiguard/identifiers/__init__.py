"""Identifier parsing and validation: HKID numbers and hospital file numbers."""

from __future__ import annotations

from phiguard.identifiers.hkid import Hkid, hkid_check_char, normalise_hkid, parse_hkid
from phiguard.identifiers.hospital_no import HospitalNumberFormat, hospital_no_check_char

__all__ = [
    "Hkid",
    "HospitalNumberFormat",
    "hkid_check_char",
    "hospital_no_check_char",
    "normalise_hkid",
    "parse_hkid",
]
