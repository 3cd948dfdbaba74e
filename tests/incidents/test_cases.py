"""Opening, attaching, containing and viewing incidents — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from phiguard.clock import HKT
from phiguard.errors import Conflict, InputError, NotFound, UsageError
from phiguard.incidents import cases, containment, enquiries, notify, playbook
from phiguard.incidents.models import AffectedPatient, Incident
from phiguard.storage.models import Account, Grant, Vendor


def _count(app, model) -> int:
    with app.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_open_from_scan_attaches_everything(hospital, cfg) -> None:
    app = hospital.app
    iid = cases.open_from(app, actor="dpo", scan=hospital.scan(20), cfg=cfg)
    assert iid == "INC-2026-0001"
    s = cases.summary(app, iid, cfg)
    assert s["affected_count"] == 20
    assert s["fields_exposed"] == ["hkid", "hospital_no", "name", "procedure", "sex"]
    assert s["vendor_id"] == "V012"
    assert s["accounts"] == [{"account_id": "vx-eng-07", "vendor_id": "V012", "role": "source"}]
    assert s["enisa"]["score"] == 5.0 and s["enisa"]["band"] == "very high"
    assert set(s["clocks"]) == {"pcpd", "cap653", "police", "hkcert", "supplier"}
    assert s["tasks"]["open"] == 15
    kinds = [e["kind"] for e in cases.timeline(app, iid)]
    assert "scan" in kinds
    assert "opened" in kinds and "attribution" in kinds
    assert cases.open_from(app, actor="dpo", title="Second", cfg=cfg) == "INC-2026-0002"
    assert {r["incident_id"] for r in cases.list_incidents(app)} == {
        "INC-2026-0001",
        "INC-2026-0002",
    }


def test_scan_naming_unknown_patients_writes_nothing(hospital, cfg) -> None:
    path = hospital.scan(ids=["P0000001", "NOT-IN-PMI"])
    with pytest.raises(InputError, match="not in the patient master index"):
        cases.open_from(hospital.app, actor="dpo", scan=path, cfg=cfg)
    assert _count(hospital.app, Incident) == 0 and _count(hospital.app, AffectedPatient) == 0


@pytest.mark.parametrize(
    "doc,why",
    [
        ({"affected_patients": []}, "links no patient"),
        ({"files": []}, "no affected_patients"),
        ({"affected_patients": [{"matched_on": []}]}, "has no patient_id"),
        ({"affected_patients": [{"patient_id": "P0000001", "confidence": 7}]}, "outside"),
        ({"affected_patients": [{"patient_id": "P0000001"}], "fields_exposed": "name"}, "list"),
    ],
)
def test_bad_scans_are_refused_with_one_line(sqlite_hospital, cfg, tmp_path, doc, why) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=why):
        cases.open_from(sqlite_hospital.app, actor="dpo", scan=path, cfg=cfg)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not a JSON scan result"):
        cases.open_from(sqlite_hospital.app, actor="dpo", scan=path, cfg=cfg)
    assert _count(sqlite_hospital.app, Incident) == 0


def test_incident_without_patients_cannot_notify_until_attached(hospital, cfg) -> None:
    app = hospital.app
    with pytest.raises(UsageError):
        cases.open_from(app, actor="dpo", title="   ", cfg=cfg)
    iid = cases.open_from(app, actor="dpo", title="Misdirected fax", cfg=cfg)
    assert cases.summary(app, iid, cfg)["affected_count"] == 0
    with pytest.raises(Conflict, match="no affected patients"):
        notify.create_campaign(app, iid, "app,sms", actor="dpo", cfg=cfg)
    assert (
        cases.attach(
            app,
            iid,
            actor="dpo",
            patient_ids=["P0000001", "P0000002"],
            fields=["name", "diagnosis"],
        )
        == 2
    )
    s = cases.summary(app, iid, cfg)
    assert s["affected_count"] == 2 and s["enisa"]["dpc"] == 4
    assert cases.attach(app, iid, actor="dpo", patient_ids=["P0000001"]) == 0  # idempotent
    with pytest.raises(NotFound):
        cases.summary(app, "INC-1999-0001", cfg)


def test_contain_suspends_the_vendor_and_revokes_its_access(hospital, cfg) -> None:
    app = hospital.app
    iid = cases.open_from(app, actor="dpo", scan=hospital.scan(), cfg=cfg)
    res = containment.suspend_vendor(app, iid, "V012", actor="ciso")
    assert res["accounts_disabled"] == 2 and res["path"] in ("access", "direct")
    with app.session() as s:
        assert s.get(Vendor, "V012").status == "suspended"
        assert s.get(Account, "vx-eng-07").status == "disabled"
        assert s.get(Account, "ha-doc-1").status == "active"
        assert s.get(Grant, "G-1").status != "active"
        done = {t.key for t in playbook.tasks(s, iid) if t.status == "done"}
    assert "contain.access" in done
    summary = cases.summary(app, iid, cfg)
    assert summary["status"] == "contained" and summary["contained_at"]
    assert any("V012 suspended" in e["text"] for e in cases.timeline(app, iid))
    with pytest.raises(NotFound):
        containment.suspend_vendor(app, iid, "NOPE", actor="ciso")


def test_open_from_alert_reads_the_patients_from_the_event_store(hospital, cfg) -> None:
    """The alert names an account and a window; the patients come from the audit store."""
    app = hospital.app
    detection = pytest.importorskip("phiguard.detection.models")
    t0 = datetime(2026, 4, 3, 1, 12, tzinfo=HKT)
    rows = [
        {
            "event_id": f"e{i}",
            "source": "REPORTS",
            "seq": i + 1,
            "ts": t0 + timedelta(seconds=i),
            "account_id": "vx-eng-07",
            "action": "export",
            "patient_id": pid,
            "fields": "name,sex,hkid,hospital_no,procedure",
            "query_id": "q-88812",
            "client_ip": "10.9.9.9",
            "device_id": "",
            "purpose": "",
            "outcome": "success",
        }
        for i, pid in enumerate(hospital.ids[:12])
    ]
    part = app.home.events / "events" / "date=2026-04-02"
    part.mkdir(parents=True)
    table = pa.Table.from_pylist(rows).cast(
        pa.schema(
            [
                *(pa.field(k, pa.string()) for k in ("event_id", "source")),
                pa.field("seq", pa.int64()),
                pa.field("ts", pa.timestamp("us", tz="UTC")),
                *(
                    pa.field(k, pa.string())
                    for k in (
                        "account_id",
                        "action",
                        "patient_id",
                        "fields",
                        "query_id",
                        "client_ip",
                        "device_id",
                        "purpose",
                        "outcome",
                    )
                ),
            ]
        )
    )
    pq.write_table(table, part / "part-0.parquet")
    now = app.clock.now()
    with app.session() as s:
        s.add(
            detection.Alert(
                alert_id="a-0001",
                subject="vx-eng-07",
                account_id="vx-eng-07",
                vendor_id="V012",
                rule="bulk_export",
                severity="critical",
                score=0.99,
                first_ts=t0,
                last_ts=t0 + timedelta(minutes=28),
                patient_count=12,
                reasons=["exported 12 patient records at night"],
                sample=hospital.ids[:2],
                hits={"bulk_export": {}},
                status="open",
                origin="batch",
                created_at=now,
                updated_at=now,
            )
        )
    iid = cases.open_from(app, actor="dpo", alert_id="a-0001", cfg=cfg)
    s = cases.summary(app, iid, cfg)
    assert s["affected_count"] == 12 and s["source"] == "alert"
    assert "procedure" in s["fields_exposed"] and s["vendor_id"] == "V012"
    texts = [e["text"] for e in cases.timeline(app, iid)]
    assert any("vx-eng-07 export q-88812: 12 patients" in t for t in texts)
    assert any("alert a-0001" in t for t in texts)
    with pytest.raises(NotFound):
        cases.open_from(app, actor="dpo", alert_id="a-9999", cfg=cfg)
    # alert and scan together: the scan decides whose data leaked
    both = cases.open_from(app, actor="dpo", alert_id="a-0001", scan=hospital.scan(5), cfg=cfg)
    assert cases.summary(app, both, cfg)["affected_count"] == 5


def test_preserve_evidence_and_notes(sqlite_hospital, cfg) -> None:
    app = sqlite_hospital.app
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(), cfg=cfg)
    manifest = containment.preserve_evidence(app, iid, actor="ciso")
    doc = json.loads(manifest.read_text())
    assert doc["incident_id"] == iid and doc["accounts"] == ["vx-eng-07"]
    assert all(len(f["sha256"]) == 64 for f in doc["files"])
    cases.add_note(app, iid, "Platform asked to take the post down", actor="dpo")
    kinds = [e["kind"] for e in cases.timeline(app, iid)]
    assert "evidence" in kinds and "note" in kinds
    with pytest.raises(UsageError):
        cases.add_note(app, iid, " ", actor="dpo")


def test_enquiries_are_logged_and_linked(sqlite_hospital, cfg) -> None:
    app = sqlite_hospital.app
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(), cfg=cfg)
    camp = notify.create_campaign(app, iid, "sms", actor="dpo", cfg=cfg)
    assert camp.campaign_id
    res = enquiries.log_enquiry(
        app,
        iid,
        agent="agent-1",
        topic="verify-letter",
        notice_ref=f"{iid}-C{camp.campaign_id}-000001",
        code="AAAA-BBBB-CCCC",
    )
    assert res["code_genuine"] is False
    rows = enquiries.enquiries(app, iid)
    assert rows[0]["topic"] == "verify-letter" and rows[0]["notice_ref"].endswith("000001")
    with pytest.raises(UsageError):
        enquiries.log_enquiry(app, iid, agent="a", topic="x", channel="pigeon")


def test_canary_records_are_not_patients(sqlite_hospital, cfg) -> None:
    from phiguard.storage.models import Patient

    app = sqlite_hospital.app
    with app.session() as s:
        s.get(Patient, "P0000002").is_canary = True
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(6), cfg=cfg)
    assert cases.summary(app, iid, cfg)["affected_count"] == 5
    assert any(e["kind"] == "canary" for e in cases.timeline(app, iid))
