"""``phiguard incidents …`` and ``phiguard notices verify`` through the real Typer app."""

from __future__ import annotations

import json
import re

from pdfminer.high_level import extract_text

from tests.factories import write_csv
from tests.incidents.conftest import hospital_rows

MOCK = {"PHIGUARD_INCIDENTS_TRANSPORTS": "mock", "PHIGUARD_INCIDENTS_CAP653_DESIGNATED": "true"}


def _setup(cli, tmp_path, n: int = 12):
    cli.env.update(MOCK)
    assert cli("init").exit_code == 0
    rows = hospital_rows(n)
    assert cli("import", "patients", str(write_csv(tmp_path / "p.csv", rows))).exit_code == 0
    write_csv(
        tmp_path / "v.csv",
        [
            {
                "vendor_id": "V012",
                "name": "Sysmaint Ltd",
                "contract_id": "C-1",
                "contract_start": "2025-01-01",
                "contract_end": "2026-12-31",
                "dpa_signed": "false",
                "last_assessment": "",
            }
        ],
    )
    assert cli("import", "vendors", str(tmp_path / "v.csv")).exit_code == 0
    write_csv(
        tmp_path / "a.csv",
        [
            {
                "account_id": "vx-eng-07",
                "person_name": "Eng Seven",
                "employer": "V012",
                "role": "vendor_engineer",
                "department": "IT",
                "cluster": "ALL",
                "active_from": "2025-01-01",
                "active_to": "",
                "patient_id": "",
                "home_address": "",
            }
        ],
    )
    assert cli("import", "accounts", str(tmp_path / "a.csv")).exit_code == 0
    scan = {
        "fields_exposed": ["name", "sex", "hkid", "hospital_no", "procedure"],
        "affected_patients": [
            {"patient_id": r["patient_id"], "matched_on": ["hkid"], "confidence": 1.0} for r in rows
        ],
        "attribution": [
            {
                "account_id": "vx-eng-07",
                "vendor_id": "V012",
                "query_id": "q-1",
                "score": 0.98,
                "coverage": 1.0,
                "evidence": "export q-1",
            }
        ],
    }
    (tmp_path / "scan.json").write_text(json.dumps(scan))
    return rows


def test_incident_lifecycle_from_the_command_line(sqlite_cli, tmp_path) -> None:
    # SQLite only: the same services run on PostgreSQL in test_cases/test_notify (app fixture)
    cli = sqlite_cli
    rows = _setup(cli, tmp_path)
    r = cli("incidents", "open", "--scan", str(tmp_path / "scan.json"), "--format", "json")
    assert r.exit_code == 0, r.output
    iid = json.loads(r.stdout)["incident_id"]
    listed = json.loads(cli("incidents", "list", "--format", "json").stdout)
    assert [x["incident_id"] for x in listed] == [iid]
    shown = json.loads(cli("incidents", "show", iid, "--format", "json").stdout)
    assert shown["affected_count"] == len(rows) and shown["status"] == "open"
    assert shown["fields_exposed"] == ["hkid", "hospital_no", "name", "procedure", "sex"]
    assert {k: shown["enisa"][k] for k in ("dpc", "ei", "cb", "score", "band")} == {
        "dpc": 4.0,
        "ei": 1.0,
        "cb": 1.0,
        "score": 5.0,
        "band": "very high",
    }
    assert shown["clocks"]["cap653"]["due"].endswith("+08:00")
    assert {"due", "state"} <= set(shown["clocks"]["pcpd"])

    r = cli("incidents", "contain", iid, "--suspend-vendor", "V012")
    assert r.exit_code == 0 and "V012 suspended" in r.stdout
    assert (
        json.loads(cli("incidents", "show", iid, "--format", "json").stdout)["status"]
        == "contained"
    )

    for kind in ("pcpd", "cap653"):
        r = cli("incidents", "report", iid, "--kind", kind, "--out", str(tmp_path / f"{kind}.pdf"))
        assert r.exit_code == 0, r.output
    assert "資料使用者" in extract_text(str(tmp_path / "pcpd.pdf"))

    r = cli("incidents", "notify", iid, "--channels", "app,sms", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["dispatch"]["sent"]["app"] > 0 and out["dispatch"]["sent"]["sms"] > 0
    assert out["status"]["phone"] == {"queued": 1}

    r = cli("incidents", "letters", iid, "--out", str(tmp_path / "letters.pdf"))
    assert r.exit_code == 0, r.output
    text = extract_text(str(tmp_path / "letters.pdf"))
    code = re.search(r"Verification code: (\S{4}-\S{4}-\S{4})", text).group(1)
    ok = cli("notices", "verify", code)
    assert ok.exit_code == 0 and "genuine" in ok.stdout
    bad = cli("notices", "verify", "ZZZZ-ZZZZ-ZZZZ")
    assert bad.exit_code == 1 and "NOT issued" in bad.stdout
    assert cli("notices", "verify", code, "--format", "json").stdout.count('"genuine": true') == 1

    r = cli("incidents", "notified", iid, "--recipient", "pcpd", "--reference", "PCPD-9")
    assert r.exit_code == 0
    tl = cli("incidents", "timeline", iid).stdout
    assert "suspended" in tl and "letters" in tl and "notified" in tl


def test_bad_input_is_one_line_and_the_right_exit_code(sqlite_cli, tmp_path) -> None:
    _setup(sqlite_cli, tmp_path, n=8)
    cli = sqlite_cli
    r = cli("incidents", "open", "--scan", str(tmp_path / "missing.json"))
    assert r.exit_code == 2 and "no such file" in r.stderr
    r = cli("incidents", "open")
    assert r.exit_code == 2 and "--alert" in r.stderr
    r = cli("incidents", "show", "INC-2026-0099")
    assert r.exit_code == 2 and "no incident" in r.stderr
    iid = json.loads(cli("incidents", "open", "--title", "Lost laptop", "--format", "json").stdout)[
        "incident_id"
    ]
    r = cli("incidents", "notify", iid)
    assert r.exit_code == 1 and "no affected patients" in r.stderr
    r = cli("incidents", "report", iid, "--kind", "tabloid", "--out", str(tmp_path / "x.pdf"))
    assert r.exit_code == 2 and "unknown report kind" in r.stderr
    r = cli("incidents", "notify", iid, "--channels", "fax")
    assert r.exit_code == 2 and "unknown channel" in r.stderr
    r = cli("incidents", "contain", iid, "--suspend-vendor", "V999")
    assert r.exit_code == 2
    r = cli("notices", "verify", "not-a-code")
    assert r.exit_code == 1
    assert len(r.stderr.strip().splitlines()) <= 1


def test_notify_resumes_after_an_interruption(sqlite_cli, tmp_path) -> None:
    """No gateway configured: notices stay queued (exit 0, a warning); once configured (mock),
    running the same command sends them, once."""
    _setup(sqlite_cli, tmp_path, n=8)
    cli = sqlite_cli
    cli.env["PHIGUARD_INCIDENTS_TRANSPORTS"] = "gateways"
    iid = json.loads(
        cli("incidents", "open", "--scan", str(tmp_path / "scan.json"), "--format", "json").stdout
    )["incident_id"]
    r = cli("incidents", "notify", iid, "--channels", "sms")
    assert r.exit_code == 0 and "no sms gateway configured" in r.stderr
    cli.env["PHIGUARD_INCIDENTS_TRANSPORTS"] = "mock"
    r = cli("incidents", "notify", iid, "--channels", "sms", "--format", "json")
    out = json.loads(r.stdout)
    assert out["campaign"]["campaign_id"] == 0  # nobody new; the old campaign resumed
    assert out["resumed"][0]["sent"]["sms"] == out["status"]["sms"]["sent"]
