"""Reports are real documents: open the PDFs and read them back, in both languages."""

from __future__ import annotations

import json

import pytest
from pdfminer.high_level import extract_text

from phiguard.errors import UsageError
from phiguard.incidents import cases, containment, reports
from tests.incidents.conftest import secrets_of

EXPECT = {
    "pcpd": [
        "Part (a)",
        "Part (b)",
        "Part (c)",
        "Part (d)",
        "資料使用者",
        "聯絡人",
        "事故詳情",
        "評估及補救措施",
        "Number of data subjects",
        "contractor",
        "SE = 4 × 1 + 1 = 5 (very high)",
    ],
    "cap653": ["Cap. 653", "第653章", "Reporting deadline", "報告限期", "not disrupted"],
    "hkcert": ["Incident Report to HKCERT", "Indicators", "vx-eng-07"],
    "police": ["Police Referral Packet", "轉介警方資料", "s.161", "第486章", "pseudonymous"],
    "final": ["Post-incident Report", "Playbook tasks", "Timeline", "Remediation and lessons"],
}


@pytest.fixture
def incident(sqlite_hospital, cfg):
    app = sqlite_hospital.app
    iid = cases.open_from(app, actor="dpo", scan=sqlite_hospital.scan(), cfg=cfg)
    containment.suspend_vendor(app, iid, "V012", actor="ciso")
    return iid


@pytest.mark.parametrize("kind", reports.KINDS)
def test_report_pdf_reads_back(sqlite_hospital, cfg, incident, tmp_path, kind) -> None:
    out = tmp_path / f"{kind}.pdf"
    res = reports.write(sqlite_hospital.app, incident, kind, out, actor="dpo", cfg=cfg)
    assert res["pages"] >= 1 and out.read_bytes().startswith(b"%PDF")
    text = " ".join(extract_text(str(out)).split())
    for needle in [incident, cfg.hospital_name, *EXPECT[kind]]:
        assert needle in text, (kind, needle)
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["kind"] == kind and doc["data"]["enisa"]["score"] == 5.0
    assert doc["data"]["affected_count"] == len(sqlite_hospital.ids)
    assert doc["data"]["clocks"]["pcpd"]["due"].endswith("+08:00")
    raw = out.read_bytes().decode("latin-1") + out.with_suffix(".json").read_text()
    for secret in secrets_of(sqlite_hospital.rows):
        assert secret not in raw and secret not in text


def test_pcpd_report_is_bilingual_and_police_lists_pseudonyms(
    sqlite_hospital, cfg, incident, tmp_path
) -> None:
    app = sqlite_hospital.app
    reports.write(app, incident, "pcpd", tmp_path / "p.pdf", actor="dpo", cfg=cfg)
    text = extract_text(str(tmp_path / "p.pdf"))
    assert "海港公立醫院" in text and "身份證號碼" in text
    reports.write(app, incident, "police", tmp_path / "police.pdf", actor="dpo", cfg=cfg)
    doc = json.loads((tmp_path / "police.json").read_text())
    assert doc["data"]["affected_patient_ids"] == sorted(sqlite_hospital.ids)
    assert any(e["kind"] == "report" for e in cases.timeline(app, incident))


def test_bad_report_requests(sqlite_hospital, cfg, incident, tmp_path) -> None:
    app = sqlite_hospital.app
    with pytest.raises(UsageError, match="unknown report kind"):
        reports.write(app, incident, "gossip", tmp_path / "x.pdf", actor="dpo", cfg=cfg)
    with pytest.raises(UsageError, match=r"\.pdf"):
        reports.write(app, incident, "pcpd", tmp_path / "x.docx", actor="dpo", cfg=cfg)
    with pytest.raises(UsageError, match="not a folder"):
        reports.write(app, incident, "pcpd", tmp_path / "nope" / "x.pdf", actor="dpo", cfg=cfg)
    missing = cfg.model_copy(update={"cjk_font": tmp_path / "none.ttc"})
    with pytest.raises(UsageError, match="fonts-arphic-uming"):
        reports.write(app, incident, "pcpd", tmp_path / "x.pdf", actor="dpo", cfg=missing)
    assert not (tmp_path / "x.pdf").exists()
