"""Linkage details: the date-of-birth index follows the PMI; mistyped dates still link."""

from __future__ import annotations

import csv

from phiguard.leaks.detectors import Detector
from phiguard.leaks.linkage import Linker
from phiguard.leaks.linkindex import refresh
from phiguard.storage.importer import import_file
from tests.leaks.pmi import import_pmi, make_people, mask, write_pmi


def _records(people, dob_of=lambda p: p.dob):  # type: ignore[no-untyped-def]
    import random

    rng = random.Random(4)
    from phiguard.identifiers import HospitalNumberFormat

    d = Detector(HospitalNumberFormat())
    out = []
    for p in people:
        out += d.from_row(
            "x", ["name_en", "hkid", "sex", "dob"], [p.name_en, mask(p.hkid, rng), p.sex, dob_of(p)]
        )
    return out


def test_the_dob_index_follows_reimported_changes(sqlite_app, tmp_path):
    people = make_people(40)
    import_pmi(sqlite_app, tmp_path, people)
    assert refresh(sqlite_app) == 40
    assert refresh(sqlite_app) == 0
    people[3].dob = "1999-09-09"  # corrected in the hospital's PMI and re-imported
    import_file(sqlite_app, "patients", write_pmi(tmp_path / "pmi2.csv", people))
    assert refresh(sqlite_app) == 1
    got = Linker(sqlite_app).link(_records([people[3]]))
    assert list(got.links) == [people[3].patient_id]


def test_a_mistyped_birth_date_is_linked_in_the_second_round(sqlite_app, tmp_path):
    people = make_people(300)
    import_pmi(sqlite_app, tmp_path, people)

    def typo(p):  # type: ignore[no-untyped-def]
        y, m, d = p.dob.split("-")
        return f"{y}-{m}-{'28' if d != '28' else '27'}"  # a wrong day of the month

    chosen = people[:20]
    got = Linker(sqlite_app).link(_records(chosen, typo))
    assert set(got.links) == {p.patient_id for p in chosen}
    assert all("dob" not in lk.matched_on for lk in got.links.values())


def test_a_masked_record_of_nobody_in_the_pmi_stays_unmatched(sqlite_app, tmp_path):
    people = make_people(200)
    import_pmi(sqlite_app, tmp_path, people[:100])
    got = Linker(sqlite_app).link(_records(people[100:130]))
    assert got.links == {} and got.unmatched == 30


def test_pmi_csv_helper_roundtrip(tmp_path):
    people = make_people(3)
    rows = list(csv.DictReader(write_pmi(tmp_path / "p.csv", people).open()))
    assert [r["patient_id"] for r in rows] == [p.patient_id for p in people]


def test_masked_records_are_linked_through_the_birth_date_index_on_each_database(app, tmp_path):
    """Round 1 (surname group + date of birth) finds them, on SQLite and on PostgreSQL."""
    from phiguard.leaks.fuzzy import fetch_by_dob

    people = make_people(200)
    import_pmi(app, tmp_path, people)
    refresh(app)
    chosen = people[:25]
    records = _records(chosen)
    fetched = {c.patient_id for c in fetch_by_dob(app, records)}
    assert {p.patient_id for p in chosen} <= fetched
    assert len(fetched) < len(people)  # the date narrows the surname group
    got = Linker(app).link(records)
    assert set(got.links) == {p.patient_id for p in chosen}


def test_keys_of_an_older_format_are_found_and_rebuilt(sqlite_app, tmp_path):
    """Keys made another way (an earlier phiguard keyed the date of birth alone) would only
    send every record to the slow second round; one re-derived key finds them out."""
    from sqlalchemy import update

    from phiguard.leaks.models import LeakLinkKey

    people = make_people(50)
    import_pmi(sqlite_app, tmp_path, people)
    assert refresh(sqlite_app, full=False) == 50
    with sqlite_app.engine.begin() as c:
        c.execute(update(LeakLinkKey).values(dob_bidx=b"\x01" * 16))
    assert refresh(sqlite_app, full=False) == 50
    assert refresh(sqlite_app, full=False) == 0
    from phiguard.leaks.fuzzy import fetch_by_dob

    fetched = {c.patient_id for c in fetch_by_dob(sqlite_app, _records(people[:5]))}
    assert {p.patient_id for p in people[:5]} <= fetched
