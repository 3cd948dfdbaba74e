"""Attempted exfiltration through the gateway: every attempt is either allowed within the
grant's scope or refused; none leaks a masked field, an out-of-scope or restricted patient,
or more rows than the grant allows.

The grant: read (and export) of name, sex and hospital number of up to 40 KEC patients. The
leak check does not trust the gateway's bookkeeping: it looks for every HKID, phone number,
address and out-of-scope name of the database in whatever came back, as text.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.gateway.conftest import hkid

LIMIT = 40
IN_SCOPE = {i for i in range(300) if i % 3 == 0 and i % 50 != 7}
SECRETS = (
    {hkid(i) for i in range(300)}
    | {f"9{i:07d}" for i in range(300)}
    | {f"{i} Nathan Road" for i in range(300)}
    | {f"CHAN Tai Man {i}" for i in range(300) if i not in IN_SCOPE}
    | {"appendicitis"}
)

ATTEMPTS = [
    # CTEs and subqueries
    "WITH x AS (SELECT * FROM patients) SELECT * FROM x",
    "WITH RECURSIVE r(n, h) AS (SELECT 1, (SELECT hkid FROM patients LIMIT 1) UNION ALL "
    "SELECT n + 1, h FROM r WHERE n < 3) SELECT * FROM r",
    "WITH patients AS (SELECT 1 AS x) SELECT * FROM (SELECT hkid FROM patients) p",
    "SELECT * FROM (WITH wards AS (SELECT 1) SELECT 1) a, patients",
    "SELECT (SELECT string_agg(hkid, ',') FROM patients)",
    "SELECT * FROM (SELECT * FROM (SELECT hkid, name_en, cluster FROM patients) a) b",
    "SELECT p.* FROM patients p WHERE p.patient_id IN (SELECT patient_id FROM episodes)",
    # set operations
    "SELECT hkid FROM patients UNION SELECT hkid FROM patients",
    "SELECT name_en FROM patients UNION ALL SELECT name_en FROM patients",
    "SELECT name_en FROM patients WHERE cluster = 'KWC' UNION SELECT 'x'",
    # predicate, error and aggregate oracles
    f"SELECT patient_id FROM patients WHERE hkid = '{hkid(3)}'",
    "SELECT patient_id FROM patients WHERE hkid LIKE 'K%'",
    "SELECT CAST(hkid AS int) FROM patients",
    "SELECT CAST(name_en AS int) FROM patients WHERE cluster = 'KWC'",
    "SELECT patient_id FROM patients WHERE CAST(phone AS int) > 0",
    "SELECT 1/(CASE WHEN name_en = 'CHAN Tai Man 1' THEN 0 ELSE 1 END) FROM patients",
    "SELECT count(*), string_agg(name_en, '|') FROM patients",
    "SELECT json_agg(p) FROM patients p",
    "SELECT row_to_json(p) FROM patients p",
    "SELECT p FROM patients p",
    "SELECT hkid, count(*) FROM patients GROUP BY hkid",
    "SELECT DISTINCT address FROM patients",
    "SELECT md5(hkid) FROM patients",
    # other tables
    "SELECT * FROM episodes",
    "SELECT e.*, p.name_en FROM episodes e JOIN patients p USING (patient_id)",
    "SELECT * FROM operations WHERE patient_id = 'P00001'",
    "SELECT p1.name_en, p2.hkid FROM patients p1 JOIN patients p2 ON true",
    "SELECT * FROM patients, LATERAL (SELECT hkid AS h FROM patients q "
    "WHERE q.patient_id = patients.patient_id) l",
    "SELECT name_en, row_number() OVER () FROM patients",
    "TABLE patients",
    "SELECT * FROM public.patients",
    'SELECT * FROM "patients"',
    "SELECT * FROM ONLY patients",
    "SELECT * FROM patients TABLESAMPLE SYSTEM (100)",
    # views, functions, catalogs, files, large objects, dblink
    "SELECT * FROM all_patients",
    "SELECT * FROM leak_all()",
    "SELECT leak_all()",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_catalog.pg_read_binary_file('/etc/passwd')",
    "SELECT lo_export(lo_from_bytea(0, 'x'), '/tmp/x')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT * FROM dblink('dbname=postgres', 'SELECT hkid FROM patients') AS t(h text)",
    "SELECT query_to_xml('SELECT hkid FROM patients', true, false, '')",
    "SELECT table_to_xml('patients', true, false, '')",
    "SELECT * FROM ts_stat('SELECT to_tsvector(hkid) FROM patients')",
    "SELECT set_config('search_path', 'pg_temp', false)",
    "SELECT most_common_vals FROM pg_stats WHERE tablename = 'patients'",
    "SELECT query FROM pg_stat_activity",
    'SELECT hkid::text COLLATE "C" FROM patients',
    "SELECT 1 OPERATOR(public.+) 1",
    # COPY
    "COPY patients TO STDOUT",
    "COPY (SELECT * FROM patients) TO '/tmp/leak.csv'",
    "COPY (SELECT * FROM patients) TO PROGRAM 'cat'",
    "COPY (SELECT hkid, name_en FROM patients) TO STDOUT WITH (FORMAT binary)",
    "COPY (SELECT hkid, name_en, patient_id FROM patients) TO STDOUT",
    "COPY (SELECT * FROM patients) TO STDOUT WITH (FORMAT csv, HEADER)",
    # writes, DDL and other ways around the parser
    "CREATE TEMP TABLE t AS SELECT * FROM patients",
    "SELECT * INTO TEMP t2 FROM patients",
    "INSERT INTO audit_copy SELECT patient_id, hkid FROM patients",
    "UPDATE patients SET vip = false",
    "CREATE VIEW v AS SELECT * FROM patients",
    "DO $$ BEGIN PERFORM * FROM patients; END $$",
    "PREPARE p AS SELECT hkid FROM patients",
    "SET search_path = pg_temp, public",
    "SET standard_conforming_strings = off",
    "SET ROLE postgres",
    "EXPLAIN ANALYZE SELECT * FROM patients",
    "SELECT * FROM patients FOR UPDATE",
    "LISTEN x",
    "SELECT E'\\x27' || hkid FROM patients",
]


def _contains(text: str, s: str) -> bool:
    """``s`` occurs in ``text`` not as part of a longer number ("…Man 1" is not "…Man 12")."""
    i = text.find(s)
    while i >= 0:
        before = text[i - 1] if i else " "
        after = text[i + len(s)] if i + len(s) < len(text) else " "
        if not before.isdigit() and not after.isdigit():
            return True
        i = text.find(s, i + 1)
    return False


def leaked(rows: list[tuple]) -> set[str]:
    text = "\n".join(repr(r) for r in rows)
    return {s for s in SECRETS if _contains(text, s)}


def in_scope(rows: list[tuple]) -> bool:
    """Every patient id that came back is a visible KEC patient."""
    for r in rows:
        for v in r:
            if (
                isinstance(v, str)
                and v.startswith("P0")
                and len(v) == 6
                and v[1:].isdigit()
                and int(v[1:]) not in IN_SCOPE
            ):
                return False
    return True


@pytest.fixture(scope="module")
def exfil_url(world, gw) -> str:
    gid = world.grant(actions="read,search,export", max_rows=LIMIT)
    return gw.url(world.credential(gid))


#: The extended protocol goes through the same judge; a sample of the attempts proves it.
EXTENDED = [a for a in ATTEMPTS if a.startswith(("SELECT", "WITH", "TABLE"))][::3]


@pytest.mark.parametrize(
    ("sql", "prepare"), [(a, False) for a in ATTEMPTS] + [(a, True) for a in EXTENDED]
)
def test_attempt_is_allowed_in_scope_or_refused(exfil_url, sql, prepare):
    with psycopg.connect(exfil_url, autocommit=True) as conn:
        try:
            if sql.startswith("COPY"):
                with conn.cursor().copy(sql) as cp:
                    data = b"".join(bytes(b) for b in cp).decode()
                rows = [tuple(line.split("\t")) for line in data.splitlines()]
                rows = rows[1:] if "HEADER" in sql else rows
            else:
                cur = conn.execute(
                    sql,
                    prepare=prepare
                    and not sql.startswith(("SET", "LISTEN", "PREPARE", "DO", "EXPLAIN")),
                )
                rows = cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            assert not leaked([(str(exc), exc.diag.message_detail or "")]), "leak in an error"
            assert conn.closed or conn.execute("SELECT 1").fetchone() == (1,)
            return
    assert len(rows) <= LIMIT
    assert not leaked(rows)
    assert in_scope(rows)


def test_the_suite_allows_useful_work(exfil_url):
    """The suite is not passed by refusing everything: ordinary maintenance reads work."""
    with psycopg.connect(exfil_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM patients").fetchone() == (len(IN_SCOPE),)
        rows = conn.execute(
            "SELECT p.name_en, o.procedure_name FROM patients p JOIN "
            "operations o USING (patient_id) ORDER BY 1 LIMIT 5"
        ).fetchall()
        assert len(rows) == 5 and all(r[1] == "***" for r in rows)  # procedure: not granted
        plan = conn.execute("EXPLAIN SELECT * FROM patients WHERE patient_id = 'P00003'").fetchall()
        assert any("Index Scan" in r[0] for r in plan)  # the scope keeps indexes usable
