"""``phiguard users``, ``phiguard tokens`` and ``phiguard serve`` through the CLI runner."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from phiguard.web.auth import totp


def test_serve_refuses_without_admin(sqlite_cli) -> None:  # type: ignore[no-untyped-def]
    assert sqlite_cli("init").exit_code == 0
    result = sqlite_cli("serve", "--port", "8765")
    assert result.exit_code == 2
    assert "create-admin" in result.output


def test_create_admin_prints_mfa_enrolment_once(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").exit_code == 0
    result = cli(
        "users",
        "create-admin",
        "root-admin",
        input="harbour-lantern-orchid-9\nharbour-lantern-orchid-9\n",
    )
    assert result.exit_code == 0, result.output
    secret = re.search(r"secret: ([A-Z2-7]{32})", result.output).group(1)
    assert "otpauth://totp/phiguard:root-admin?secret=" + secret in result.output.replace("\n", "")
    listed = cli("users", "list", "--format", "json")
    users = json.loads(listed.stdout)
    assert users == [
        {
            "username": "root-admin",
            "role": "admin",
            "status": "active",
            "account_id": None,
            "mfa": True,
            "security_keys": 0,
            "last_login_at": None,
        }
    ]
    assert secret not in listed.output
    now = datetime.now(UTC)
    assert totp.verify(secret, totp.code_at(secret, now), now=now, last_step=0) is not None


def test_weak_password_rejected_with_reason(sqlite_cli) -> None:  # type: ignore[no-untyped-def]
    sqlite_cli("init")
    result = sqlite_cli("users", "create-admin", "--password", "Password2026!")
    assert result.exit_code == 2
    assert "common or breached" in result.output
    short = sqlite_cli("users", "create", "kim", "--role", "auditor", "--password", "short-one")
    assert short.exit_code == 2 and "at least 12" in short.output
    assert json.loads(sqlite_cli("users", "list", "--format", "json").stdout) == []


def test_unknown_role_and_duplicate_user(sqlite_cli) -> None:  # type: ignore[no-untyped-def]
    sqlite_cli("init")
    bad = sqlite_cli("users", "create", "kim", "--role", "superuser", "--generate-password")
    assert bad.exit_code == 2 and "unknown role" in bad.output
    ok = sqlite_cli("users", "create", "kim", "--role", "auditor", "--generate-password")
    assert ok.exit_code == 0 and "password (shown once)" in ok.output
    assert "secret:" not in ok.output  # auditors are not forced onto TOTP
    again = sqlite_cli("users", "create", "kim", "--role", "auditor", "--generate-password")
    assert again.exit_code == 1 and "already exists" in again.output


def test_tokens_create_rotate_revoke(sqlite_cli) -> None:  # type: ignore[no-untyped-def]
    sqlite_cli("init")
    created = sqlite_cli("tokens", "create", "CMS KEC", "--scopes", "events:write,decide")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("phg_")
    token_id = secret.split("_")[1]
    rows = json.loads(sqlite_cli("tokens", "list", "--format", "json").stdout)
    assert rows[0]["token_id"] == token_id and rows[0]["active"] is True
    assert secret.split("_", 2)[2] not in sqlite_cli("tokens", "list").output
    rotated = sqlite_cli("tokens", "rotate", token_id)
    assert rotated.exit_code == 0
    new_secret = rotated.stdout.strip().splitlines()[-1]
    assert new_secret != secret
    revoke = sqlite_cli("tokens", "revoke", new_secret.split("_")[1])
    assert revoke.exit_code == 0
    states = {
        r["token_id"]: r["active"]
        for r in json.loads(sqlite_cli("tokens", "list", "--format", "json").stdout)
    }
    assert list(states.values()) == [False, False]
    bad = sqlite_cli("tokens", "create", "x", "--scopes", "users:admin")
    assert bad.exit_code == 2 and "unknown token scope" in bad.output


@pytest.mark.slow
def test_serve_starts_the_console_and_its_watcher(sqlite_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    sqlite_cli("init")
    sqlite_cli("users", "create-admin", "--generate-password")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "phiguard"
    proc = subprocess.Popen(
        [str(exe), "serve", "--home", str(sqlite_cli.home), "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PHIGUARD_DATABASE_URL": ""},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert resp.json() == {"status": "ok"}
        assert "server" not in resp.headers  # no version banner
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        assert login.status_code == 200 and "Log in" in login.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert "detection watcher" in stderr and f"127.0.0.1:{port}" in stderr
