from __future__ import annotations

import psycopg


def test_point_read(url):
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT patient_id, hkid, name_en, sex FROM patients WHERE patient_id = 'P00000'").fetchone()
        print(row)
        rows = conn.execute("SELECT hkid, name_en FROM patients").fetchall()
        print(len(rows), rows[:3])
        rows = conn.execute("SELECT * FROM patients WHERE patient_id = %s", ("P00003",)).fetchall()
        print(rows)
