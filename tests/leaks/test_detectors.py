"""Detectors and header inference: names, dates, sex, phones, procedures, EN/ZH headers."""

from __future__ import annotations

import pytest

from phiguard.identifiers import HospitalNumberFormat
from phiguard.leaks.detectors import (
    Detector,
    parse_date,
    parse_english_name,
    parse_hkid_value,
    parse_phone,
    surname_variants,
    value_kind,
)
from phiguard.leaks.headers import category_for_header, infer_columns


@pytest.mark.parametrize(
    "text",
    [
        "CHAN Tai Man",
        "Chan Tai-man",
        "Tai Man CHAN",
        "CHAN, Tai Man",
        "chan taiman",
        "Tai-Man Chan",
    ],
)
def test_romanised_names_in_any_order_and_spelling(text):
    name = parse_english_name(text)
    assert name is not None
    assert name.token_key == parse_english_name("CHAN Tai Man").token_key  # type: ignore[union-attr]


def test_two_word_surnames_and_variants():
    assert parse_english_name("AU YEUNG Ka Wai").surname == "AUYEUNG"  # type: ignore[union-attr]
    assert {"CHAN", "CHEN"} <= surname_variants("CHAN")
    assert {"WONG", "WANG", "HUANG"} <= surname_variants("WONG")
    assert surname_variants("陳") == surname_variants("CHEN")
    assert surname_variants("陈") == surname_variants("陳")  # simplified form


def test_masked_and_wrong_hkids():
    assert parse_hkid_value("A123***(3)") == ("masked", "A123___3")
    assert parse_hkid_value("a123xxx(3)") == ("masked", "A123___3")
    assert parse_hkid_value("A123456(3)") == ("valid", "A1234563")
    assert parse_hkid_value("A123456(4)") == ("invalid", "A1234564")
    assert parse_hkid_value("hello") is None


def test_dates_phones_and_value_kinds():
    assert parse_date("12/03/1980") == "1980-03-12"  # Hong Kong day-first order
    assert parse_date("1980年3月12日") == "1980-03-12"
    assert parse_date("31/02/1980") is None
    assert parse_phone("+852 9123 4567") == "91234567"
    assert parse_phone("2123 4567") is None  # not a mobile
    kinds = [
        value_kind(v)
        for v in [
            "A123456(3)",
            "HN000000019",
            "1980-03-12",
            "91234567",
            "男",
            "陳大文",
            "CHAN Tai Man",
            "Total knee replacement",
            "ok",
        ]
    ]
    assert kinds == [
        "hkid",
        "hospital_no",
        "dob",
        "phone",
        "sex",
        "name_zh",
        "name_en",
        "procedure",
        None,
    ]


@pytest.mark.parametrize(
    ("header", "category"),
    [
        ("姓名", "name"),
        ("性別", "sex"),
        ("身份證號碼", "hkid"),
        ("檔案編號", "hospital_no"),
        ("手術", "procedure"),
        ("出生日期", "dob"),
        ("聯絡電話", "phone"),
        ("HKID No.", "hkid"),
        ("Hosp No", "hospital_no"),
        ("Patient Name", "name"),
        ("D.O.B.", "dob"),
        ("Gender", "sex"),
        ("Operation", "procedure"),
        ("Chinese Name", "name_zh"),
        ("patient_id", None),
        ("ID", None),
    ],
)
def test_headers_in_english_and_chinese(header, category):
    assert category_for_header(header) == category


def test_columns_without_a_header_are_inferred_from_their_values():
    rows = [["陳大文", "A123456(3)", "F", "x1"], ["李小明", "B111111(1)", "M", "x2"]]
    assert infer_columns(None, rows, value_kind) == ["name_zh", "hkid", "sex", None]


def test_prose_keeps_each_person_with_their_own_identifier():
    d = Detector(HospitalNumberFormat())
    recs = d.from_text("x", "CHAN Tai Man A123456(3) male; WONG Siu Ming B111111(1) female")
    assert [(r.hkid, r.name_en.surname, r.sex) for r in recs] == [  # type: ignore[union-attr]
        ("A1234563", "CHAN", "M"),
        ("B1111111", "WONG", "F"),
    ]
    (rec,) = d.from_text("x", "陳大文 身份證 A123***(3) 性別: 男 出生日期 12/03/1980 闌尾切除術")
    assert (rec.name_zh, rec.hkid_masked, rec.sex, rec.dob) == (
        "陳大文",
        "A123___3",
        "M",
        "1980-03-12",
    )
    assert rec.procedure == "Appendectomy" or rec.procedure == "Appendicectomy"
    assert (
        d.from_text("x", "call me on 9123 4567 tonight") == []
    )  # a phone alone is no patient record
