from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phiguard.errors import InputError
from phiguard.identifiers import hkid_check_char, normalise_hkid, parse_hkid


@pytest.mark.parametrize(
    "spelling",
    ["A123456(3)", "A1234563", "A123456 3", "a123456(3)", " A123456（3） ", "A123456 (3)"],
)
def test_every_common_spelling_of_the_reference_vector_is_valid(spelling: str) -> None:
    assert normalise_hkid(spelling) == "A1234563"


def test_wrong_check_character_is_rejected() -> None:
    assert not parse_hkid("A123456(4)").valid
    with pytest.raises(InputError, match="check character"):
        normalise_hkid("A123456(4)")


@pytest.mark.parametrize(
    "bad", ["", "123456(3)", "ABC123456(3)", "A12345(3)", "A1234567(3)", "A123456(B)"]
)
def test_wrong_shapes_are_rejected(bad: str) -> None:
    with pytest.raises(InputError):
        parse_hkid(bad)


def test_masked_numbers_keep_known_characters_but_never_validate() -> None:
    h = parse_hkid("A123***(3)")
    assert h.masked and not h.valid
    assert (h.prefix, h.digits, h.check) == ("A", "123***", "3")
    with pytest.raises(InputError, match="masked"):
        normalise_hkid("A123***(3)")


def test_str_never_shows_the_number() -> None:
    assert "123456" not in str(parse_hkid("A123456(3)"))


@given(
    prefix=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2),
    digits=st.text("0123456789", min_size=6, max_size=6),
)
def test_generated_numbers_round_trip_through_every_spelling(prefix: str, digits: str) -> None:
    check = hkid_check_char(prefix, digits)
    canonical = f"{prefix}{digits}{check}"
    for spelling in (f"{prefix}{digits}({check})", canonical.lower(), f"{prefix}{digits} {check}"):
        assert normalise_hkid(spelling) == canonical
    # any single changed digit breaks the checksum (mod 11 with distinct weights)
    for i in range(6):
        other = str((int(digits[i]) + 1) % 10)
        changed = digits[:i] + other + digits[i + 1 :]
        assert not parse_hkid(f"{prefix}{changed}{check}").valid


def test_two_letter_prefix_known_vector() -> None:
    # computed by hand: A B 9 8 7 6 5 4 -> 10*9+11*8+9*7+8*6+7*5+6*4+5*3+4*2 = 371; 371 % 11 = 8
    assert hkid_check_char("AB", "987654") == "3"
