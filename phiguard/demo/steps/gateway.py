"""Chapter: the same night, had the contractor worked through phiguard's gateway — the export
is refused, what he may see comes back masked and scoped, every statement is sealed, the
refused attempts are alerted by the live detection rules, and the session dies the moment the
vendor is suspended."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from phiguard.demo.story import Story

ADMIN = os.environ.get("PHIGUARD_DEMO_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
VENDOR, ACCOUNT = "V-GW", "gw-eng-07"
MAC = b"\x00" * 16


def _reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(ADMIN, connect_timeout=2):
            return True
    except Exception:
        return False


def _contractor(story: Story) -> str:
    """A maintenance contractor with a grant like the one in the story: KEC, names, sex and
    hospital numbers, read only, 500 rows a query, for tonight."""
    from phiguard.access import common as ac
    from phiguard.access.assessments import record_training
    from phiguard.storage.models import Account, Contract, Grant, Vendor

    app = story.app
    now = app.clock.now()
    today = ac.hk_date(now)
    with app.session() as s:
        if s.get(Vendor, VENDOR) is None:
            s.add(
                Vendor(
                    vendor_id=VENDOR,
                    name="Night Maintenance Ltd",
                    dpa_signed=True,
                    last_assessment=today - timedelta(days=20),
                    status="active",
                    row_mac=MAC,
                )
            )
            s.flush()
            s.add(
                Contract(
                    contract_id="C-GW",
                    vendor_id=VENDOR,
                    start=today - timedelta(days=90),
                    end=today + timedelta(days=90),
                    dpa_signed=True,
                )
            )
            s.add(
                Account(
                    account_id=ACCOUNT,
                    employer=VENDOR,
                    role="vendor_engineer",
                    department="IT",
                    cluster="ALL",
                    status="active",
                    row_mac=MAC,
                )
            )
    record_training(
        app,
        ACCOUNT,
        completed_on=today - timedelta(days=5),
        expires_on=today + timedelta(days=360),
        actor="demo:hr",
    )
    gid = ac.new_id("G")
    with app.session() as s:
        s.add(
            Grant(
                grant_id=gid,
                account_id=ACCOUNT,
                scope_cluster="KEC",
                scope_fields="name,sex,hospital_no",
                actions="read,search",
                max_rows=500,
                valid_from=now - timedelta(minutes=5),
                valid_to=now + timedelta(hours=6),
                purpose="SYSADMIN",
                approved_by="demo:it-manager",
                status="active",
                origin="request",
            )
        )
        ac.bump(s)
    return gid


def run(story: Story) -> None:
    story.chapter("7 · The gateway: the same night, through phiguard")
    if not _reachable():
        story.say(
            "  (skipped: no PostgreSQL server answers at "
            f"{ADMIN.split('@')[-1]}. Start one, or set PHIGUARD_DEMO_PG to an admin "
            "URL, to watch a contractor's night replayed through the gateway.)"
        )
        return
    import psycopg

    from phiguard.access import vendors
    from phiguard.detection.watch import StoreTail
    from phiguard.gateway.credentials import issue
    from phiguard.gateway.sample import sample_database
    from phiguard.gateway.server import Gateway, GatewayThread
    from phiguard.gateway.session import replay
    from phiguard.gateway.settings import GatewaySettings

    t0 = time.perf_counter()
    with sample_database(ADMIN, patients=2000) as upstream:
        gid = _contractor(story)
        tail = StoreTail(story.app.home.events)  # the event store as it is before tonight
        before = story.app.clock.now()
        settings = GatewaySettings(
            listen="127.0.0.1:0", upstream=upstream, check_seconds=0.2, record_seconds=0.1
        )
        thread = GatewayThread(Gateway(story.app, settings))
        host, port = thread.start()
        try:
            issued = issue(story.app, gid, actor=ACCOUNT)
            story.say(
                f"  01:05 — {ACCOUNT} ({VENDOR}) asks for a connection string for grant "
                f"{gid}: KEC only, name/sex/hospital number, 500 rows, until "
                f"{issued.expires_at.astimezone().strftime('%H:%M')}"
            )
            url = issued.url(host, port, upstream.rsplit("/", 1)[1])
            conn = _night(story, url, psycopg)
            thread.gateway.recorder.flush()  # the refusals are sealed as denied events …
            _alert(story, tail, before)  # … and the live rules read them
            vendors.suspend(
                story.app,
                VENDOR,
                reason="gateway refused a bulk export",
                actor="demo:privacy-officer",
            )
            thread.check_now()
            story.say(
                f"  01:13 — the privacy officer suspends {VENDOR}; the live session "
                f"ends: {_dies(conn, psycopg)}"
            )
            thread.gateway.recorder.flush()
            _replay(story, replay)
        finally:
            thread.stop()
    story.state["gateway_grant"] = gid
    story.say(f"  (chapter ran in {time.perf_counter() - t0:.1f} s against a real PostgreSQL)")


def _night(story: Story, url: str, psycopg: Any) -> Any:
    conn = psycopg.connect(url, autocommit=True)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    n = conn.execute("SELECT count(*) FROM patients").fetchone()[0]
    story.say(
        f"  01:06 — SELECT count(*) FROM patients → {n:,} (only KEC, no restricted "
        "patients: the rest of the table does not exist for this grant)"
    )
    row = conn.execute(
        "SELECT patient_id, name_en, sex, hkid, phone FROM patients ORDER BY patient_id LIMIT 1"
    ).fetchone()
    story.say(f"  01:08 — one row: {row} — HKID and phone come back masked")
    for sql in (
        "COPY (SELECT p.name_en, p.sex, p.hkid, p.hospital_no, o.procedure_name FROM "
        "patients p JOIN operations o USING (patient_id)) TO STDOUT WITH (FORMAT csv)",
        "SELECT * FROM all_patients_backup",
        "SELECT pg_read_file('/var/lib/postgresql/dump.csv')",
    ):
        try:
            if sql.startswith("COPY"):
                with conn.cursor() as cur, cur.copy(sql) as cp:
                    for _ in cp:
                        pass
            else:
                conn.execute(sql)
        except psycopg.Error as exc:
            story.say(
                f"  01:10 — {sql.split(' FROM')[0][:40]}… → [bold red]refused[/]: "
                f"{str(exc).splitlines()[0][:150]}"
            )
    rows = conn.execute(
        "SELECT p.name_en, p.hkid, p.hospital_no, o.procedure_name FROM "
        "patients p JOIN operations o USING (patient_id)"
    ).fetchall()
    story.say(
        f"  01:12 — the same dump as a SELECT → {len(rows):,} rows "
        f"({notices[-1] if notices else 'not cut'}); hkid {rows[0][1]!r}, "
        f"procedure {rows[0][3]!r}"
    )
    return conn


def _alert(story: Story, tail: Any, before: Any) -> None:
    """Run the live detection rules (the evaluator behind ``phiguard watch``) over the events
    the gateway has just sealed, and show what they raise."""
    import pyarrow.compute as pc

    from phiguard.detection.settings import DetectionSettings
    from phiguard.detection.watch import Watcher

    table = tail.poll()
    if table is not None:
        table = table.filter(pc.equal(table.column("source"), "GATEWAY"))
    if table is None or table.num_rows == 0:
        story.say("  01:12 — (no gateway events reached the event store: nothing to evaluate)")
        return
    denied = int(pc.sum(pc.equal(table.column("outcome"), "denied")).as_py() or 0)
    # Stricter than the default burst of 20: for contractor gateway sessions the privacy
    # office alerts on three refusals in ten minutes (PHIGUARD_DETECT_DENIED_MIN=3).
    p = DetectionSettings().model_copy(update={"denied_min": 3, "contain": "off"})
    watcher = Watcher.start(story.app, p, sinks=[], baseline_before=before)
    try:
        raised = watcher.feed(table)
    finally:
        watcher.close()
    story.say(
        f"  01:12 — the live detection rules read the {table.num_rows:,} access events "
        f"just sealed ({denied} denied; watch configured with "
        "PHIGUARD_DETECT_DENIED_MIN=3 for contractor sessions):"
    )
    if not raised:
        story.say("           no alert was raised")
    for r in raised:
        a = r.alert
        story.say(
            f"  [bold red]ALERT {a.alert_id}[/] {a.severity} · {a.account_id} "
            f"({a.vendor_id or 'staff'}), raised {r.latency_s * 1000:.0f} ms after the "
            "events were handed in; its reasons:"
        )
        hits = sorted((a.hits or {}).items(), key=lambda kv: kv[0] != "denied_burst")
        for rule, hit in hits:
            first = (hit.get("reasons") or [""])[0]
            story.say(f"           – {rule} ({hit.get('severity')}): {first[:170]}")
        if "outside_grant" in (a.hits or {}):
            story.say(
                "           (the sample database's patients are not in phiguard's patient "
                "index in this demo, so the grant check sees their cluster as unknown: "
                "'?')"
            )
    story.state["gateway_alerts"] = [r.alert.alert_id for r in raised]


def _dies(conn: Any, psycopg: Any) -> str:
    try:
        for _ in range(40):
            conn.execute("SELECT 1")
            time.sleep(0.05)
        return "(it did not end: see the gateway log)"
    except psycopg.Error as exc:
        return f"“{str(exc).splitlines()[0]}”"
    finally:
        conn.close()


def _replay(story: Story, replay: Any) -> None:
    from phiguard.gateway.session import list_sessions

    rows = list_sessions(story.app, account_id=ACCOUNT, limit=1)
    if not rows:
        return
    info = replay(story.app, rows[0]["session_id"])
    refused = [s for s in info["steps"] if s.get("decision") == "deny"]
    rows_out = sum(s.get("rows") or 0 for s in info["steps"])
    patients = sum(s.get("patients") or 0 for s in info["steps"])
    story.say(
        f"  replay {info['session_id']}: {len(info['steps'])} statements sealed in the "
        f"audit log as GATEWAY access events — {len(refused)} refused, {rows_out:,} rows "
        f"returned, {patients:,} patient ids recorded; the refused attempts are denied "
        f"access events that detection reads like any source's. `phiguard gateway "
        f"replay {info['session_id']}` shows each one"
    )
