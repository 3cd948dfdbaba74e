"""The synthetic hospital: realistic, valid, labelled, explained, reproducible."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from phiguard.demo.gen_people import (
    HKID_PREFIXES,
    hkid_check_chars,
    render_hkids,
    render_hospital_nos,
)
from phiguard.demo.generator import GenerationSummary, generate
from phiguard.errors import UsageError
from phiguard.identifiers import HospitalNumberFormat, hkid_check_char, parse_hkid
from phiguard.storage.tabular import open_tabular

SPEC_COLUMNS = {
    "patients": [
        "patient_id",
        "hkid",
        "hospital_no",
        "name_en",
        "name_zh",
        "sex",
        "dob",
        "cluster",
        "phone",
        "address",
        "app_registered",
        "vip",
    ],
    "accounts": [
        "account_id",
        "person_name",
        "employer",
        "role",
        "department",
        "cluster",
        "active_from",
        "active_to",
        "patient_id",
        "home_address",
    ],
    "vendors": [
        "vendor_id",
        "name",
        "contract_id",
        "contract_start",
        "contract_end",
        "dpa_signed",
        "last_assessment",
    ],
    "grants": [
        "grant_id",
        "account_id",
        "scope_cluster",
        "scope_fields",
        "actions",
        "max_rows",
        "valid_from",
        "valid_to",
        "purpose",
        "approved_by",
    ],
    "encounters": ["patient_id", "department", "account_id", "start", "end"],
    "events": [
        "event_id",
        "source",
        "seq",
        "ts",
        "account_id",
        "action",
        "patient_id",
        "fields",
        "query_id",
        "client_ip",
        "device_id",
        "purpose",
        "outcome",
    ],
}
CLUSTERS = {"HKEC", "HKWC", "KCC", "KEC", "KWC", "NTEC", "NTWC"}
HKT = "+08:00"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerationSummary, dict[str, Any]]:
    out = tmp_path_factory.mktemp("gen") / "hospital"
    stages: Counter[str] = Counter()
    summary = generate(
        out, patients=4_000, days=4, seed=7, progress=lambda s, d, t: stages.update([s])
    )
    labels = json.loads((out / "labels.json").read_text("utf-8"))
    labels["_stages"] = stages
    return summary, labels


@pytest.fixture(scope="module")
def db(hospital: tuple[GenerationSummary, dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    out = hospital[0].out
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Hong_Kong'")
    for name in ("patients", "accounts", "vendors", "grants", "encounters"):
        con.execute(
            f"CREATE TABLE {name} AS SELECT * FROM read_csv('{out / name}.csv', all_varchar=true)"
        )
    con.execute(f"CREATE TABLE events AS SELECT * FROM '{out / 'events.parquet'}'")
    return con


# -- files and columns ----------------------------------------------------------------------


def test_writes_every_file_with_the_spec_columns(
    hospital: tuple[GenerationSummary, dict[str, Any]],
) -> None:
    summary, labels = hospital
    out = summary.out
    for name in ("patients", "accounts", "vendors", "grants", "encounters"):
        with (out / f"{name}.csv").open(encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        assert header[: len(SPEC_COLUMNS[name])] == SPEC_COLUMNS[name]
        assert summary.counts[f"{name}.csv"] == len(_rows(out / f"{name}.csv"))
    schema = pq.read_schema(out / "events.parquet")
    assert schema.names == SPEC_COLUMNS["events"]
    assert str(schema.field("ts").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("seq").type) == "int64"
    assert all(
        str(schema.field(c).type) == "string"
        for c in SPEC_COLUMNS["events"]
        if c not in ("ts", "seq")
    )
    assert summary.counts["events.parquet"] == pq.read_metadata(out / "events.parquet").num_rows
    assert labels["files"] == summary.counts
    assert (out / "leak" / "dump.csv").is_file() and summary.leak_dump == out / "leak" / "dump.csv"
    assert {"people", "patients", "events"} <= set(labels["_stages"])
    assert not list(out.parent.glob(".hospital.partial-*"))


def test_reference_files_import_without_a_bad_row(
    hospital: tuple[GenerationSummary, dict[str, Any]], sqlite_app
) -> None:  # type: ignore[no-untyped-def]
    from phiguard.storage.importer import import_file

    out = hospital[0].out
    for kind in ("vendors", "accounts", "patients", "grants", "encounters"):
        report = import_file(sqlite_app, kind, out / f"{kind}.csv", actor="test")
        assert report.rows_bad == 0, (kind, report)
        assert report.rows_total == hospital[0].counts[f"{kind}.csv"]


# -- patients -------------------------------------------------------------------------------


def test_patients_have_valid_unique_hkids_with_one_and_two_letter_prefixes(hospital) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(hospital[0].out / "patients.csv")
    hkids = [r["hkid"] for r in rows if r["hkid"]]
    assert len(hkids) > 0.95 * len(rows)
    assert len(set(hkids)) == len(hkids)
    for h in hkids:
        parsed = parse_hkid(h)
        assert parsed.valid, h
        assert hkid_check_char(parsed.prefix, parsed.digits) == parsed.check
        assert h == parsed.display
    prefixes = Counter(len(parse_hkid(h).prefix) for h in hkids)
    assert prefixes[1] > 0 and prefixes[2] > 0


def test_vectorised_checksums_agree_with_the_identifier_library() -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, len(HKID_PREFIXES), 3000) * 1_000_000 + rng.integers(0, 1_000_000, 3000)
    chars = hkid_check_chars(codes)
    for code, ch in zip(codes.tolist(), chars.tolist(), strict=True):
        assert chr(ch) == hkid_check_char(
            HKID_PREFIXES[code // 1_000_000], f"{code % 1_000_000:06d}"
        )
    assert render_hkids(np.array([HKID_PREFIXES.index("A") * 1_000_000 + 123456])).to_pylist() == [
        "A123456(3)"
    ]
    serials = rng.integers(0, 100_000_000, 2000)
    fmt = HospitalNumberFormat()
    assert render_hospital_nos(serials).to_pylist() == [fmt.make(int(s)) for s in serials]


def test_patients_look_like_hong_kong_patients(hospital) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(hospital[0].out / "patients.csv")
    fmt = HospitalNumberFormat()
    assert len({r["patient_id"] for r in rows}) == len(rows)
    assert len({fmt.normalise(r["hospital_no"]) for r in rows}) == len(rows)
    assert {r["cluster"] for r in rows} == CLUSTERS
    clusters = Counter(r["cluster"] for r in rows)
    assert clusters["KWC"] > clusters["HKWC"]  # weighted by catchment population
    assert {r["sex"] for r in rows} <= {"M", "F", "U"}
    for r in rows:
        surname, *given = r["name_en"].split(" ")
        assert surname.isupper() and given, r["name_en"]
        if r["name_zh"]:
            assert re.fullmatch(r"[\u4e00-\u9fff]{2,3}", r["name_zh"]), r["name_zh"]
        if r["phone"]:
            assert re.fullmatch(r"[569]\d{7}", r["phone"])
        date.fromisoformat(r["dob"])
        assert r["app_registered"] in ("true", "false") and r["vip"] in ("true", "false")
    names = [r["name_en"] for r in rows]
    assert any("-" in n for n in names) and any(
        re.search(r" [A-Z][a-z]+ [A-Z][a-z]+$", n) for n in names
    )
    assert sum(not r["name_zh"] for r in rows) < 0.1 * len(rows)
    assert 1 <= sum(r["vip"] == "true" for r in rows) < 0.01 * len(rows)
    # Families: several people at one address, most sharing a surname.
    homes = defaultdict(list)
    for r in rows:
        if r["address"]:
            homes[r["address"]].append(r["name_en"].split(" ")[0])
    shared = [v for v in homes.values() if len(v) > 1]
    assert len(shared) > 0.1 * len(homes)
    assert sum(len(set(v)) < len(v) for v in shared) > 0.5 * len(shared)


# -- workforce ------------------------------------------------------------------------------


def test_accounts_vendors_and_grants_hang_together(hospital) -> None:  # type: ignore[no-untyped-def]
    out = hospital[0].out
    accounts = {r["account_id"]: r for r in _rows(out / "accounts.csv")}
    vendors = {r["vendor_id"]: r for r in _rows(out / "vendors.csv")}
    patients = {r["patient_id"]: r for r in _rows(out / "patients.csv")}
    roles = Counter(a["role"] for a in accounts.values())
    assert set(roles) == {
        "doctor",
        "nurse",
        "clerk",
        "pharmacist",
        "it_support",
        "vendor_engineer",
        "service",
    }
    for a in accounts.values():
        assert a["employer"] == "HA" or a["employer"] in vendors
        assert (a["role"] == "vendor_engineer") == (a["employer"] != "HA")
        if a["patient_id"]:
            assert patients[a["patient_id"]]["name_en"] == a["person_name"]
            assert a["home_address"] == patients[a["patient_id"]]["address"]
        if a["role"] == "service":
            assert not a["person_name"]
    assert sum(bool(a["patient_id"]) for a in accounts.values()) > 0.2 * len(accounts)
    ended = [v for v in vendors.values() if v["contract_end"] and v["contract_end"] < "2026-04-01"]
    assert ended and len(ended) < len(vendors)
    for g in _rows(out / "grants.csv"):
        assert g["account_id"] in accounts and g["approved_by"] in accounts
        assert g["approved_by"] != g["account_id"]
        assert g["valid_from"].endswith(HKT) and g["valid_from"] < g["valid_to"]
        assert g["scope_cluster"] in CLUSTERS | {"ALL"}
        assert int(g["max_rows"]) > 0


# -- events ---------------------------------------------------------------------------------


def test_sequence_numbers_are_continuous_per_source(db: duckdb.DuckDBPyConnection) -> None:
    rows = db.execute(
        "SELECT source, count(*), min(seq), max(seq), count(DISTINCT event_id), "
        "bool_and(seq_ok), bool_and(ts_ok) FROM ("
        " SELECT source, seq, event_id,"
        "  seq = 1 + lag(seq, 1, 0) OVER (PARTITION BY source ORDER BY rowid) AS seq_ok,"
        "  ts >= lag(ts, 1, ts) OVER (PARTITION BY source ORDER BY rowid) AS ts_ok"
        " FROM (SELECT *, row_number() OVER () AS rowid FROM events)) GROUP BY source"
    ).fetchall()
    assert {r[0] for r in rows} == {"CMS", "ePR", "REPORTS"}
    for source, n, lo, hi, distinct, seq_ok, ts_ok in rows:
        assert (lo, hi, distinct) == (1, n, n), source
        assert seq_ok and ts_ok, source
    assert db.execute("SELECT count(DISTINCT event_id) = count(*) FROM events").fetchone() == (
        True,
    )


def test_events_follow_daily_rhythms_and_use_the_spec_vocabulary(
    db: duckdb.DuckDBPyConnection,
) -> None:
    hours = dict(db.execute("SELECT hour(ts), count(*) FROM events GROUP BY 1").fetchall())
    assert hours[10] > 4 * hours[4]
    assert {a for (a,) in db.execute("SELECT DISTINCT action FROM events").fetchall()} == {
        "read",
        "search",
        "print",
        "export",
        "update",
    }
    assert {o for (o,) in db.execute("SELECT DISTINCT outcome FROM events").fetchall()} == {
        "success",
        "denied",
    }
    purposes = {p for (p,) in db.execute("SELECT DISTINCT purpose FROM events").fetchall()}
    assert {"TREAT", "ETREAT", "HOPERAT", "SYSADMIN", None} <= purposes
    # Every account and patient exists; multi-row queries share a query id.
    assert db.execute(
        "SELECT count(*) FROM events e LEFT JOIN accounts a USING (account_id) WHERE a.role IS NULL"
    ).fetchone() == (0,)
    assert db.execute(
        "SELECT count(*) FROM events e LEFT JOIN patients p USING (patient_id) "
        "WHERE e.patient_id IS NOT NULL AND p.cluster IS NULL"
    ).fetchone() == (0,)
    assert (
        db.execute(
            "SELECT count(*) FROM (SELECT query_id FROM events WHERE query_id IS NOT NULL "
            "GROUP BY 1 HAVING count(*) > 1)"
        ).fetchone()[0]
        > 10
    )  # type: ignore[index]
    assert (
        db.execute(
            "SELECT count(*) FROM events WHERE patient_id IS NULL AND action = 'search'"
        ).fetchone()[0]
        > 0
    )  # type: ignore[index]
    # Each account uses one or two devices (new ones only where a scenario says so).
    assert (
        db.execute(
            "SELECT max(n) FROM "
            "(SELECT account_id, count(DISTINCT device_id) n FROM events GROUP BY 1)"
        ).fetchone()[0]
        <= 2
    )  # type: ignore[index]


def _scenario_events(labels: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    out = []
    for s in labels["scenarios"]:
        if s["decoy"]:
            continue
        for pid in s["patient_ids"]:
            out.append((s["account_id"], pid, s["first_ts"], s["last_ts"]))
    return out


EXPLAINED = """
    SELECT count(*) AS n, count(x.patient_id) AS explained FROM (
      SELECT e.event_id, any_value(c.patient_id) AS patient_id
      FROM events e JOIN accounts a USING (account_id)
      LEFT JOIN encounters c ON c.patient_id = e.patient_id
           AND e.ts BETWEEN c.start::TIMESTAMPTZ AND c."end"::TIMESTAMPTZ
           AND (c.account_id = e.account_id OR c.department = a.department)
      LEFT JOIN planted p ON p.account_id = e.account_id AND p.patient_id = e.patient_id
           AND e.ts BETWEEN p.first_ts::TIMESTAMPTZ AND p.last_ts::TIMESTAMPTZ
      WHERE a.role IN ('doctor', 'nurse', 'clerk', 'pharmacist') AND e.patient_id IS NOT NULL
        AND p.account_id IS NULL
      GROUP BY e.event_id) x
"""


def test_benign_clinical_accesses_are_explained_by_encounters(
    hospital, db: duckdb.DuckDBPyConnection
) -> None:  # type: ignore[no-untyped-def]
    planted = _scenario_events(hospital[1])
    db.execute(
        "CREATE OR REPLACE TABLE planted "
        "(account_id VARCHAR, patient_id VARCHAR, first_ts VARCHAR, last_ts VARCHAR)"
    )
    db.executemany("INSERT INTO planted VALUES (?, ?, ?, ?)", planted)
    n, explained = db.execute(EXPLAINED).fetchone()  # type: ignore[misc]
    assert n > 10_000
    assert explained / n >= 0.97
    assert explained / n < 0.999  # some noise is there for detection to find


def test_every_scenario_is_labelled_and_present_in_the_events(
    hospital, db: duckdb.DuckDBPyConnection
) -> None:  # type: ignore[no-untyped-def]
    labels = hospital[1]
    kinds = {s["kind"] for s in labels["scenarios"]}
    assert kinds >= {
        "bulk_export",
        "vip_snooping",
        "coworker_snooping",
        "family_snooping",
        "self_access",
        "after_contract_end",
        "after_grant_expiry",
        "dormant_reactivated",
        "slow_exfiltration",
        "service_nightly_export",
        "busy_emergency_doctor",
        "clerk_batch_print",
        "common_surname",
    }
    for s in labels["scenarios"]:
        assert s["event_count"] > 0, s["id"]
        assert ("max_severity" in s) == s["decoy"] and ("expected_min_severity" in s) != s["decoy"]
        assert s["expected_rules"] and s["description"]
        datetime.fromisoformat(s["first_ts"])
        found = db.execute(
            "SELECT count(*), count(DISTINCT patient_id) FROM events WHERE account_id = ? "
            "AND ts BETWEEN ?::TIMESTAMPTZ AND ?::TIMESTAMPTZ"
            + (" AND list_contains(?, patient_id)" if "patient_ids" in s else ""),
            [
                s["account_id"],
                s["first_ts"],
                s["last_ts"],
                *([s["patient_ids"]] if "patient_ids" in s else []),
            ],
        ).fetchone()
        assert found is not None and found[0] >= s["event_count"], s["id"]
        if not s["decoy"]:
            assert found[1] == s["patient_count"] == len(s["patient_ids"]), s["id"]
        for q in s["query_ids"]:
            assert (
                db.execute("SELECT count(*) FROM events WHERE query_id = ?", [q]).fetchone()[0] > 0
            )  # type: ignore[index]


def test_the_seed_is_a_night_bulk_export_of_kec_beyond_its_grant(
    hospital, db: duckdb.DuckDBPyConnection
) -> None:  # type: ignore[no-untyped-def]
    labels = hospital[1]
    seed = next(s for s in labels["scenarios"] if s["kind"] == "bulk_export")
    kec = db.execute("SELECT count(*) FROM patients WHERE cluster = 'KEC'").fetchone()[0]  # type: ignore[index]
    assert seed["patient_count"] == min(56_000, int(kec * 0.75))
    assert seed["first_ts"].endswith("T01:12:00+08:00") and seed["last_ts"].endswith(
        "T01:40:11+08:00"
    )
    assert seed["first_ts"].startswith("2026-04-03")  # the last day, by default
    (q,) = seed["query_ids"]
    rows = db.execute(
        "SELECT count(*), count(DISTINCT e.patient_id), bool_and(p.cluster = 'KEC'), "
        "any_value(action), any_value(fields), min(hour(ts)) "
        "FROM events e JOIN patients p USING (patient_id) WHERE query_id = ?",
        [q],
    ).fetchone()
    assert rows == (
        seed["patient_count"],
        seed["patient_count"],
        True,
        "export",
        "name,sex,hkid,hospital_no,procedure",
        1,
    )
    account = db.execute(
        "SELECT * FROM accounts WHERE account_id = ?", [seed["account_id"]]
    ).fetchone()
    assert account is not None and "vendor_engineer" in account
    grant = db.execute(
        "SELECT scope_cluster, max_rows FROM grants WHERE account_id = ?", [seed["account_id"]]
    ).fetchone()
    assert grant == ("HKWC", "50")
    assert 0 < seed["details"]["previous_daily_max"] < 50
    assert seed["vendor_id"] == "V012"


def test_the_leaked_dump_is_messy_and_labelled(hospital) -> None:  # type: ignore[no-untyped-def]
    out = hospital[0].out
    leak = hospital[1]["leak"]
    seed = next(s for s in hospital[1]["scenarios"] if s["kind"] == "bulk_export")
    assert leak["query_id"] == seed["query_ids"][0] and leak["account_id"] == seed["account_id"]
    with (out / "leak" / "dump.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["Name", "Sex", "HKID", "Hospital No", "Procedure"]
        dump = list(reader)
    assert len(dump) == leak["records"] == leak["patient_count"] + leak["unmatched_records"]
    pmi = {r["hospital_no"]: r for r in _rows(out / "patients.csv")}
    by_hkid = {r["hkid"] for r in pmi.values() if r["hkid"]}
    matched = [r for r in dump if r[3] in pmi]
    assert sorted(pmi[r[3]]["patient_id"] for r in matched) == leak["patient_ids"]
    assert set(leak["not_in_export_patient_ids"]) <= set(leak["patient_ids"])
    assert leak["patient_count"] - len(leak["not_in_export_patient_ids"]) == seed["patient_count"]
    invalid = valid = 0
    spellings = Counter()
    for name, sex, hkid, hn, proc in dump:
        assert name and sex in ("M", "F", "U") and proc
        if not hkid:
            continue
        parsed = parse_hkid(hkid)
        spellings[
            "bracket"
            if "(" in hkid
            else "space"
            if " " in hkid
            else "fullwidth"
            if "（" in hkid
            else "bare"
        ] += 1
        spellings["lower"] += hkid != hkid.upper()
        if parsed.valid:
            valid += 1
            if hn not in pmi:
                assert parsed.display not in by_hkid  # made-up people are in no PMI
        else:
            invalid += 1
    assert (valid, invalid) == (leak["hkid_valid"], leak["hkid_invalid"]) and invalid > 0
    assert all(spellings[k] > 0 for k in ("bracket", "bare", "space", "lower"))
    assert sum(r[3] not in pmi for r in dump) == leak["unmatched_records"]


def test_decoys_are_busy_but_explained(hospital, db: duckdb.DuckDBPyConnection) -> None:  # type: ignore[no-untyped-def]
    by_kind = {s["kind"]: s for s in hospital[1]["scenarios"]}
    for kind in ("busy_emergency_doctor", "clerk_batch_print", "common_surname"):
        s = by_kind[kind]
        unexplained = db.execute(
            "SELECT count(*) FROM events e JOIN accounts a USING (account_id) "
            "WHERE e.account_id = ? "
            "AND list_contains(?, e.patient_id) AND NOT EXISTS (SELECT 1 FROM encounters c "
            "WHERE c.patient_id = e.patient_id "
            'AND e.ts BETWEEN c.start::TIMESTAMPTZ AND c."end"::TIMESTAMPTZ '
            "AND (c.account_id = e.account_id OR c.department = a.department))",
            [s["account_id"], s["patient_ids"]],
        ).fetchone()
        assert unexplained == (0,), kind
    assert by_kind["busy_emergency_doctor"]["event_count"] >= 200
    surname = by_kind["common_surname"]
    home = db.execute(
        "SELECT split_part(person_name, ' ', 1), home_address FROM accounts WHERE account_id = ?",
        [surname["account_id"]],
    ).fetchone()
    assert home is not None and home[0] == "CHAN"
    for name, address in db.execute(
        "SELECT name_en, address FROM patients WHERE list_contains(?, patient_id)",
        [surname["patient_ids"]],
    ).fetchall():
        assert name.split(" ")[0] == "CHAN" and address != home[1]


# -- determinism, formats and bad input -------------------------------------------------------


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_same_seed_gives_identical_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", patients=1_500, days=2, seed=11)
    b = generate(tmp_path / "b", patients=1_500, days=2, seed=11)
    c = generate(tmp_path / "c", patients=1_500, days=2, seed=12)
    assert _digest(a.out) == _digest(b.out)
    assert _digest(a.out)["patients.csv"] != _digest(c.out)["patients.csv"]


def test_parquet_and_csv_events_carry_the_same_rows(tmp_path: Path) -> None:
    p = generate(tmp_path / "p", patients=1_200, days=1, seed=5, fmt="parquet", scenarios=False)
    c = generate(
        tmp_path / "c", patients=1_200, days=1, seed=5, events_format="csv", scenarios=False
    )
    kinds = ("accounts", "encounters", "events", "grants", "patients", "vendors")
    assert sorted(p.counts) == [f"{k}.parquet" for k in kinds]
    assert p.leak_dump is None and json.loads(p.labels.read_text())["scenarios"] == []
    pat_pq = [row for _, row in open_tabular(p.out / "patients.parquet").rows()]
    pat_csv = [row for _, row in open_tabular(c.out / "patients.csv").rows()]
    assert pat_pq == pat_csv
    grants = [row for _, row in open_tabular(p.out / "grants.parquet").rows()]
    assert grants[0]["valid_from"].endswith(HKT)  # type: ignore[union-attr]
    events_csv = _rows(c.out / "events.csv")
    events_pq = pq.read_table(p.out / "events.parquet").to_pylist()
    assert len(events_csv) == len(events_pq) == c.counts["events.csv"]
    first_csv, first_pq = events_csv[0], events_pq[0]
    assert first_csv["event_id"] == first_pq["event_id"] and first_csv["seq"] == "1"
    assert datetime.fromisoformat(first_csv["ts"]) == first_pq["ts"]
    assert first_csv["ts"].endswith(HKT)


def test_volume_follows_the_events_setting(tmp_path: Path) -> None:
    s = generate(
        tmp_path / "v",
        patients=1_000,
        days=2,
        seed=1,
        events=5_000,
        scenarios=False,
        start=date(2025, 1, 6),
    )
    labels = json.loads(s.labels.read_text())
    assert labels["generator"]["start"] == "2025-01-06" and s.end == date(2025, 1, 7)
    assert (
        labels["events"]["routine_explained"]
        + labels["events"]["routine_unexplained"]
        + labels["events"]["searches_without_result"]
        <= 5_000
    )
    assert 5_000 <= s.counts["events.parquet"] < 5_000 + labels["events"]["prepared"] + 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patients": 10}, "at least"),
        ({"days": 0}, "--days"),
        ({"fmt": "xlsx"}, "unknown format"),
        ({"events_format": "json"}, "unknown events format"),
        ({"events": -1}, "negative"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"patients": 1_000, "days": 1, "seed": 1} | kwargs
    with pytest.raises(UsageError, match=message):
        generate(tmp_path / "out", **args)
    assert not list(tmp_path.iterdir())


def test_an_existing_hospital_is_replaced_only_on_request_and_failures_leave_nothing(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    generate(out, patients=1_000, days=1, seed=1, scenarios=False)
    before = _digest(out)
    with pytest.raises(UsageError, match="not empty"):
        generate(out, patients=1_000, days=1, seed=2, scenarios=False)

    def boom(stage: str, done: int, total: int) -> None:
        if stage == "events":
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        generate(
            out, patients=1_000, days=1, seed=2, scenarios=False, overwrite=True, progress=boom
        )
    assert _digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    generate(out, patients=1_000, days=1, seed=2, scenarios=False, overwrite=True)
    assert _digest(out) != before


def test_small_hospitals_still_hold_every_scenario(tmp_path: Path) -> None:
    s = generate(tmp_path / "tiny", patients=1_000, days=1, seed=3)
    labels = json.loads(s.labels.read_text())
    assert s.scenarios == 9 and s.decoys >= 3
    assert all(x["event_count"] > 0 for x in labels["scenarios"])
    day = (s.start + timedelta(days=0)).isoformat()
    assert all(
        x["first_ts"].startswith(day)
        for x in labels["scenarios"]
        if not x["decoy"] and x["kind"] != "after_contract_end"
    )
