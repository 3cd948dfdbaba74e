"""The byte-level HKID / hospital-number scanner against a plain regex reference."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from phiguard.identifiers import HospitalNumberFormat, hkid_check_char
from phiguard.leaks.fastscan import scan_buffer, scan_chunks

REF = re.compile(
    rb"(?<![A-Za-z0-9])([A-Za-z]{1,2})(\d{6})(?:\(([0-9Aa])\)|\[([0-9Aa])\]| ([0-9Aa])|([0-9Aa]))"
    rb"(?![A-Za-z0-9])"
)


def reference(data: bytes) -> tuple[list[str], int]:
    valid, invalid = [], 0
    for m in REF.finditer(data):
        prefix, digits = m.group(1).decode().upper(), m.group(2).decode()
        check = next(g for g in m.groups()[2:] if g).decode().upper()
        if hkid_check_char(prefix, digits) == check:
            valid.append(prefix + digits + check)
        else:
            invalid += 1
    return valid, invalid


def _hkid(rng: random.Random, *, good: bool = True) -> str:
    p = "".join(rng.choice("ABCDEGHKMPRZ") for _ in range(rng.choice([1, 1, 1, 2])))
    d = f"{rng.randrange(10**6):06d}"
    c = hkid_check_char(p, d)
    if not good:
        c = rng.choice([x for x in "0123456789A" if x != c])
    return rng.choice(
        [
            f"{p}{d}({c})",
            f"{p}{d}{c}",
            f"{p}{d} {c}",
            f"{p}{d}[{c}]",
            f"{p.lower()}{d}({c.lower()})",
        ]
    )


def test_every_common_spelling_is_found_and_validated():
    for text in [
        b"A123456(3)",
        b"A1234563",
        b"A123456 3",
        b"a123456(3)",
        b"x,A123456[3],y",
        "A123456（3）".encode(),
    ]:
        hits, _ = scan_buffer(text)
        assert hits.hkids() == ["A1234563"], text
    hits, _ = scan_buffer(b"A123456(4) and XA123456(3)")
    assert hits.hkids() == [] and hits.hkid_invalid == 2


def test_identifiers_glued_to_other_words_are_not_identifiers():
    for text in [b"1A123456(3)", b"ZZA1234563", b"A12345634", b"A1234563B"]:
        hits, _ = scan_buffer(text)
        assert hits.hkids() == [] and hits.hkid_invalid == 0, text


def test_hospital_numbers_in_the_default_shape():
    hn = HospitalNumberFormat()
    good, other = hn.make(12345678), hn.make(7)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    hits, _ = scan_buffer(f"{good},{other.lower()};{bad} HN1234567".encode())
    assert hits.hospital_numbers() == [good, other]
    assert hits.hospital_no_invalid == 1


def test_agrees_with_a_regex_reference_on_a_noisy_csv():
    rng = random.Random(5)
    lines = []
    for i in range(3000):
        lines.append(
            f"P{i:05d},CHAN Tai Man,{_hkid(rng, good=rng.random() < 0.9)},"
            f"1980-01-{i % 28 + 1:02d},9{rng.randrange(10**7):07d},note {rng.randrange(10**9)}"
        )
    data = ("\n".join(lines)).encode()
    want_valid, want_invalid = reference(data)
    hits, _ = scan_buffer(data)
    assert sorted(hits.hkids()) == sorted(want_valid)
    assert hits.hkid_invalid == want_invalid


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=8))
def test_chunk_boundaries_never_lose_or_duplicate_an_identifier(cuts):
    rng = random.Random(9)
    data = " ".join(
        _hkid(rng) + (" " + HospitalNumberFormat().make(i)) for i in range(300)
    ).encode()
    whole, _ = scan_buffer(data)
    points = sorted({c % len(data) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    chunked = scan_chunks(iter(pieces))
    assert sorted(chunked.hkids()) == sorted(whole.hkids())
    assert sorted(chunked.hospital_numbers()) == sorted(whole.hospital_numbers())
    assert chunked.hkid_invalid == whole.hkid_invalid


@settings(max_examples=60, deadline=None)
@given(
    prefix=st.text(alphabet="ABCDEGHKMPRZ", min_size=1, max_size=2),
    digits=st.integers(min_value=0, max_value=999_999),
    style=st.integers(min_value=0, max_value=4),
    before=st.text(alphabet=" ,;:\t|\n(", min_size=1, max_size=3),
    after=st.text(alphabet=" ,;:\t|\n.", max_size=3),
)
def test_any_spelling_of_a_valid_hkid_is_found_by_both_scanners(
    prefix, digits, style, before, after
):
    from phiguard.identifiers import HospitalNumberFormat as Fmt
    from phiguard.leaks.detectors import Detector

    d = f"{digits:06d}"
    c = hkid_check_char(prefix, d)
    spelled = [
        f"{prefix}{d}({c})",
        f"{prefix}{d}{c}",
        f"{prefix}{d} {c}",
        f"{prefix}{d}({c})".lower(),
        f"{prefix}{d}（{c}）",
    ][style]
    text = f"name CHAN Tai Man{before}{spelled}{after}"
    hits, _ = scan_buffer(text.encode())
    assert hits.hkids() == [prefix + d + c]
    (rec,) = Detector(Fmt()).from_text("x", text)
    assert rec.hkid == prefix + d + c
