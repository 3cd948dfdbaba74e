"""A small patient administration database for the demo and the benchmark: the schema the
built-in data map describes, filled with synthetic people (fake HKIDs, names, phones)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

SCHEMA = """
CREATE TABLE patients (patient_id text PRIMARY KEY, hkid varchar(12), hospital_no text,
  name_en text, name_zh text, sex char(1), dob date, cluster text NOT NULL, phone text,
  address text, vip boolean NOT NULL DEFAULT false, created_at timestamptz DEFAULT now());
CREATE TABLE episodes (episode_id serial PRIMARY KEY, patient_id text REFERENCES patients,
  specialty text, ward text, admitted date, discharged date, diagnosis text);
CREATE TABLE operations (operation_id serial PRIMARY KEY, episode_id int REFERENCES episodes,
  patient_id text REFERENCES patients, procedure_name text, performed date, theatre text);
CREATE TABLE wards (ward text PRIMARY KEY, cluster text, beds int);
"""
CLUSTERS = ("KEC", "KWC", "HKEC", "NTEC")
PROCEDURES = ("appendectomy", "cholecystectomy", "hernia repair", "cataract extraction")


@contextmanager
def sample_database(admin_dsn: str, patients: int = 2000) -> Iterator[str]:
    """Create, fill, yield the libpq URL of, and finally drop a throwaway database."""
    import psycopg

    name = f"phiguard_pas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)
            fill(conn, patients)
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def fill(conn: object, n: int) -> None:
    day0 = date(1940, 1, 1)
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        with cur.copy(
            "COPY patients (patient_id, hkid, hospital_no, name_en, name_zh, sex, "
            "dob, cluster, phone, address, vip) FROM STDIN"
        ) as cp:
            for i in range(n):
                cp.write_row(
                    (
                        f"P{i:07d}",
                        f"Z{100000 + i % 900000}({i % 10})",
                        f"HN{i:08d}{i % 10}",
                        f"CHAN Tai Man {i}",
                        "陳大文",
                        "MF"[i % 2],
                        day0 + timedelta(days=(i * 37) % 25000),
                        CLUSTERS[i % 4],
                        f"9{i % 10_000_000:07d}",
                        f"{i} Nathan Road",
                        i % 997 == 5,
                    )
                )
        cur.execute(
            "INSERT INTO episodes (patient_id, specialty, ward, admitted, diagnosis) "
            "SELECT patient_id, 'SURG', 'W1', date '2026-03-01', 'appendicitis' "
            "FROM patients"
        )
        cur.execute(
            "INSERT INTO operations (episode_id, patient_id, procedure_name, performed,"
            " theatre) SELECT episode_id, patient_id, (ARRAY['appendectomy', "
            "'cholecystectomy', 'hernia repair'])[1 + episode_id % 3], admitted, 'OT2' "
            "FROM episodes"
        )
        cur.execute("INSERT INTO wards VALUES ('W1', 'KEC', 30), ('W2', 'KWC', 20)")
        cur.execute("ANALYZE")
