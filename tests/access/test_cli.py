"""The access commands through the real Typer app: output, exit codes, --at."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from phiguard.app import App
from phiguard.clock import HKT, FixedClock
from phiguard.settings import Settings
from tests.access.conftest import World

AT = "2026-04-02T09:00:00+08:00"


def _populate(cli, database_url=None):
    assert cli("init").exit_code == 0
    app = App.open(
        Settings(home=cli.home, database_url=database_url),
        clock=FixedClock(datetime(2026, 4, 2, 9, 0, tzinfo=HKT)),
    )
    World(app).standard()
    app.close()
    return cli


@pytest.fixture
def home(sqlite_cli):
    return _populate(sqlite_cli)


@pytest.fixture
def any_home(cli, database_url):
    """On SQLite and on the real PostgreSQL."""
    return _populate(cli, database_url)


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_grant_lifecycle_and_decide_through_the_cli(home):
    cli = home
    req = _json(
        cli(
            "grants",
            "request",
            "--account",
            "c1",
            "--cluster",
            "KEC",
            "--fields",
            "name,sex,hospital_no",
            "--actions",
            "read,search",
            "--max-rows",
            "20",
            "--purpose",
            "HOPERAT",
            "--ticket",
            "CHG-1",
            "--reason",
            "rebuild the PAS index",
            "--duration",
            "8h",
            "--at",
            AT,
            "--format",
            "json",
        )
    )
    assert req["required_approvals"] == 1
    refused = cli("grants", "approve", req["request_id"], "--as", "c1", "--at", AT)
    assert refused.exit_code == 1 and "contractor account" in refused.stderr
    ok = _json(
        cli("grants", "approve", req["request_id"], "--as", "m1", "--at", AT, "--format", "json")
    )
    gid = ok["grant"]["grant_id"]
    allow = cli(
        "access", "decide", "--account", "c1", "--action", "read", "--patient", "P1", "--at", AT
    )
    assert allow.exit_code == 0
    body = json.loads(allow.stdout)
    assert list(body) == ["decision", "reasons", "obligations"] and body["decision"] == "allow"
    deny = cli(
        "access",
        "decide",
        "--account",
        "c1",
        "--action",
        "export",
        "--cluster",
        "KEC",
        "--rows",
        "56012",
        "--fields",
        "name,hkid",
        "--at",
        AT,
    )
    assert deny.exit_code == 0
    assert json.loads(deny.stdout)["decision"] == "deny"
    later = cli(
        "access",
        "decide",
        "--account",
        "c1",
        "--action",
        "read",
        "--patient",
        "P1",
        "--at",
        "2026-04-02T17:00:00+08:00",
    )
    assert json.loads(later.stdout)["decision"] == "deny"
    listed = _json(cli("grants", "list", "--account", "c1", "--at", AT, "--format", "json"))
    assert [g["grant_id"] for g in listed] == [gid]
    hist = _json(cli("grants", "history", gid, "--format", "json"))
    assert [e["kind"] for e in hist] == ["requested", "approved", "granted"]
    assert cli("grants", "revoke", gid, "--reason", "done", "--as", "m2", "--at", AT).exit_code == 0


def test_kill_switch_in_one_command(any_home):
    cli = any_home
    req = _json(
        cli(
            "grants",
            "request",
            "--account",
            "c1",
            "--cluster",
            "KEC",
            "--fields",
            "name",
            "--actions",
            "read",
            "--max-rows",
            "5",
            "--purpose",
            "HOPERAT",
            "--ticket",
            "T",
            "--reason",
            "look at one record",
            "--at",
            AT,
            "--format",
            "json",
        )
    )
    cli("grants", "approve", req["request_id"], "--as", "m1", "--at", AT)
    res = cli("vendors", "suspend", "V1", "--reason", "suspected leak", "--at", AT)
    assert res.exit_code == 0
    assert "1 grant(s) revoked, 1 account(s) disabled" in res.stdout
    body = json.loads(
        cli(
            "access", "decide", "--account", "c1", "--action", "read", "--patient", "P1", "--at", AT
        ).stdout
    )
    assert body["decision"] == "deny" and "vendor V1 is suspended" in body["reasons"]
    res = cli("vendors", "resume", "V1", "--reason", "cleared", "--at", AT)
    assert res.exit_code == 0 and "stay disabled" in res.stdout
    shown = _json(cli("vendors", "show", "V1", "--at", AT, "--format", "json"))
    assert [e["kind"] for e in shown["events"]] == ["suspended", "resumed"]
    assert shown["accounts"] == [
        {"account_id": "c1", "role": "vendor_engineer", "status": "disabled"}
    ]


BAD_USAGE = [
    (["access", "decide", "--account", "c1", "--action", "delete"], 2, "unknown action"),
    (["access", "decide", "--account", "c1", "--action", "read", "--at", "soon"], 2, "ISO"),
    (["access", "decide", "--account", "c1", "--action", "read", "--rows", "-3"], 2, "rows"),
    (["vendors", "suspend", "V404", "--reason", "x"], 2, "unknown vendor"),
    (["grants", "approve", "R-nope", "--as", "m1"], 2, "unknown request"),
    (["grants", "approve", "R-nope"], 2, "--as"),
    (
        [
            "grants",
            "request",
            "--account",
            "ghost",
            "--cluster",
            "KEC",
            "--fields",
            "name",
            "--actions",
            "read",
            "--max-rows",
            "1",
            "--purpose",
            "HOPERAT",
            "--ticket",
            "T",
            "--reason",
            "some good reason",
        ],
        2,
        "unknown account",
    ),
]


def test_bad_usage_exits_with_one_line(home):
    for args, code, message in BAD_USAGE:
        res = home(*args)
        assert res.exit_code == code, args
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, args


def test_vendor_management_commands(sqlite_cli, tmp_path):
    cli = sqlite_cli
    assert cli("init").exit_code == 0
    assert cli("vendors", "add", "V9", "--name", "Night Shift IT", "--at", AT).exit_code == 0
    assert (
        cli(
            "vendors",
            "contract",
            "V9",
            "--contract-id",
            "K9",
            "--start",
            "2026-01-01",
            "--end",
            "2026-12-31",
            "--dpa",
            "--at",
            AT,
        ).exit_code
        == 0
    )
    bad = cli(
        "vendors", "contract", "V9", "--contract-id", "K10", "--start", "2026-06-01", "--at", AT
    )
    assert bad.exit_code == 1 and "overlaps" in bad.stderr
    answers = tmp_path / "answers.json"
    q = json.loads(cli("vendors", "questionnaire", "--format", "json").stdout)["questions"]
    answers.write_text(
        json.dumps(
            {
                "answers": {x["id"]: "yes" for x in q},
                "findings": [{"severity": "high", "title": "no MFA on VPN"}],
            }
        )
    )
    res = _json(
        cli(
            "vendors",
            "assess",
            "V9",
            "--answers",
            str(answers),
            "--as",
            "m1",
            "--at",
            AT,
            "--format",
            "json",
        )
    )
    assert res["score"] == 100.0 and res["passed"]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    res = cli("vendors", "assess", "V9", "--answers", str(broken), "--at", AT)
    assert res.exit_code == 2 and "not valid JSON" in res.stderr
    listed = _json(cli("vendors", "list", "--at", AT, "--format", "json"))
    assert listed[0]["vendor_id"] == "V9" and listed[0]["under_contract"]


def test_breakglass_review_and_policies_commands(home):
    cli = home
    res = _json(
        cli(
            "access",
            "breakglass",
            "start",
            "--account",
            "d1",
            "--reason",
            "arrest in ward 5B",
            "--patient",
            "P2",
            "--at",
            AT,
            "--format",
            "json",
        )
    )
    sid = res["session_id"]
    body = json.loads(
        cli(
            "access", "decide", "--account", "d1", "--action", "read", "--patient", "P2", "--at", AT
        ).stdout
    )
    assert body["decision"] == "allow"
    sweep = _json(cli("access", "sweep", "--at", "2026-04-05T10:00:00+08:00", "--format", "json"))
    assert sweep["escalated"] == [sid]
    assert (
        cli(
            "access",
            "breakglass",
            "review",
            sid,
            "--outcome",
            "justified",
            "--note",
            "confirmed",
            "--as",
            "m2",
            "--at",
            AT,
        ).exit_code
        == 0
    )
    camp = _json(
        cli(
            "access",
            "review",
            "start",
            "--name",
            "Q2",
            "--as",
            "m1",
            "--at",
            AT,
            "--format",
            "json",
        )
    )
    assert camp["items"] == []
    checked = cli("access", "policies", "check")
    assert checked.exit_code == 0 and "policies valid" in checked.stdout
    (cli.home / "policies").mkdir()
    (cli.home / "policies" / "bad.cedar").write_text("forbid (principal, action, resource);")
    bad = cli("access", "policies", "check")
    assert bad.exit_code == 2 and "@id" in bad.stderr
