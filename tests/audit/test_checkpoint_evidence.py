"""Signed notes, witnesses, evidence bundles checked offline, crypto-erasure, the audit CLI."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from phiguard.app import App
from phiguard.audit.checkpoint import (
    Checkpoint,
    LocalWitness,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    sign_checkpoint,
)
from phiguard.audit.evidence import build, verify
from phiguard.audit.retention import erase_period
from phiguard.clock import HKT, FixedClock
from phiguard.errors import Conflict, IntegrityError, UsageError
from tests.audit.conftest import reopen, verify_home
from tests.conftest import Cli


def test_signed_note_format_follows_c2sp() -> None:
    signer = NoteSigner.from_seed("example.com/log", b"\x07" * 32)
    note = sign_checkpoint(Checkpoint("example.com/log", 5, b"\x01" * 32), signer)
    text, _, sig_line = note.decode().partition("\n\n")
    assert text == "example.com/log\n5\n" + base64.b64encode(b"\x01" * 32).decode()
    assert sig_line.startswith("\u2014 example.com/log ") and sig_line.endswith("\n")
    raw = base64.b64decode(sig_line.split(" ")[2])
    assert len(raw) == 4 + 64
    verifier = NoteVerifier.parse(signer.vkey)
    assert signer.vkey.split("+")[1] == raw[:4].hex()
    assert open_checkpoint(note, verifier).checkpoint.size == 5
    with pytest.raises(IntegrityError):
        open_checkpoint(note.replace(b"\n5\n", b"\n6\n"), verifier)
    other = NoteVerifier.parse(NoteSigner.from_seed("example.com/log", b"\x08" * 32).vkey)
    with pytest.raises(IntegrityError, match="not signed"):
        open_checkpoint(note, other)  # an unknown key's signature is ignored, so: unsigned
    for bad in (
        "no-plus",
        "a+zz+AAAA",
        "a b+00000000+" + base64.b64encode(b"\x01" + b"\0" * 32).decode(),
    ):
        with pytest.raises(UsageError):
            NoteVerifier.parse(bad)


def test_witness_cosigns_only_consistent_growth(sqlite_app: App, tmp_path: Path) -> None:
    witness = LocalWitness.create(tmp_path / "w", "witness.example.hk/w1")
    log = sqlite_app.audit
    log.append_batch("CMS", [b"a", b"b"])
    note = log.cosign_latest(witness)
    verified = open_checkpoint(note, log.verifier, [NoteVerifier.parse(witness.vkey)])
    assert [name for name, _ in verified.cosigners] == ["witness.example.hk/w1"]
    log.append_batch("CMS", [b"c"])
    log.cosign_latest(witness)
    # a forked log (another tree claimed for the same origin) is refused
    forged = sign_checkpoint(Checkpoint(log.origin, 2, b"\x09" * 32), log.signer)
    with pytest.raises(IntegrityError, match="older|inconsistent"):
        witness.cosign(forged, log.verifier, lambda a, b: log.consistency_proof(a, b), 0)
    forged = sign_checkpoint(Checkpoint(log.origin, log.size + 1, b"\x09" * 32), log.signer)
    with pytest.raises(IntegrityError, match="inconsistent"):
        witness.cosign(forged, log.verifier, lambda a, b: [b"\x00" * 32], 0)
    sqlite_app.close()
    report = verify_home(sqlite_app.home.root)
    assert report.ok


def test_evidence_bundle_verifies_offline_and_detects_edits(
    sqlite_app: App, tmp_path: Path
) -> None:
    log = sqlite_app.audit
    rows = [
        b'{"event_id":"E%d","account_id":"%s"}' % (i, b"vx-eng-07" if i % 3 == 0 else b"dr-lee")
        for i in range(50)
    ]
    r = log.append_batch("CMS", rows[:25])
    log.publish()
    log.append_batch("CMS", rows[25:])
    log.publish()
    chosen = [r.first_index + i for i in range(50) if i % 3 == 0]
    bundle = build(log, chosen, tmp_path / "case.zip", selection={"account_id": "vx-eng-07"})
    problems, summary = verify(bundle)
    assert problems == [] and summary["entries"] == len(chosen)
    assert summary["key"] == log.config["vkey"]
    # the bundle's own verify.py, run as a separate program with only Python + cryptography
    with zipfile.ZipFile(bundle) as z:
        z.extract("verify.py", tmp_path)
    run = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "verify.py"), str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 and "VERIFIED" in run.stdout, run.stdout + run.stderr
    # change one shown byte: both verifiers refuse
    with zipfile.ZipFile(bundle) as z:
        members = {n: z.read(n) for n in z.namelist()}
    lines = members["entries.jsonl"].decode().splitlines()
    doc = json.loads(lines[1])
    doc["data_b64"] = base64.b64encode(
        base64.b64decode(doc["data_b64"]).replace(b"vx-eng-07", b"vx-eng-08")
    ).decode()
    lines[1] = json.dumps(doc)
    members["entries.jsonl"] = ("\n".join(lines) + "\n").encode()
    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(edited, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    problems, _ = verify(edited)
    assert any("differ from the sealed bytes" in p for p in problems)
    run = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "verify.py"), str(edited)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    # pinning a different log key rejects the bundle
    other = NoteSigner.from_seed(log.origin, b"\x05" * 32).vkey
    problems, _ = verify(bundle, key=other)
    assert problems


def test_crypto_erasure_keeps_tree_verifiable(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 3, 5, 9, 0, tzinfo=HKT))
    app = App.init(
        __import__("phiguard.settings", fromlist=["Settings"]).Settings(home=tmp_path / "h"),
        clock=clock,
    )
    march = app.audit.append_batch("CMS", [b"HKID-like secret %d" % i for i in range(10)])
    with pytest.raises(Conflict, match="not ended"):
        erase_period(app, "2026-03", actor="dpo")
    clock.advance(timedelta(days=40))
    april = app.audit.append_batch("CMS", [b"april"])
    with pytest.raises(Conflict, match="retention"):
        erase_period(app, "2026-03", actor="dpo", keep_months=1)
    done = erase_period(app, "2026-03", actor="dpo")
    assert done.entries == 10
    with pytest.raises(Conflict):
        erase_period(app, "2026-03", actor="dpo")
    log = app.audit
    got = dict(log.entries())
    assert march.first_index not in got and got[april.first_index] == b"april"
    # proofs for erased entries still verify against the signed root
    from phiguard.audit.merkle import verify_inclusion

    size = log.size
    verify_inclusion(
        march.first_index,
        size,
        log.leaf_hash(march.first_index),
        log.inclusion_proof(march.first_index, size),
        log.root_at(size),
    )
    app.close()
    report = verify_home(tmp_path / "h")
    assert report.ok and report.erased_entries == 10
    # an erasure marker planted without a logged erasure is caught
    (tmp_path / "h" / "audit" / "keys" / "2026-04.key").unlink()
    assert not verify_home(tmp_path / "h").ok


def test_cli_checkpoint_prove_witness(sqlite_cli: Cli, tmp_path: Path) -> None:
    assert sqlite_cli("init").exit_code == 0
    app = reopen(sqlite_cli.home)
    r = app.audit.append_batch("CMS", [b'{"event_id":"EV-42","account_id":"a"}'])
    app.close()
    res = sqlite_cli("audit", "checkpoint")
    assert res.exit_code == 0 and "\u2014 phiguard.local/audit/" in res.output
    res = sqlite_cli("audit", "prove", "EV-42", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["index"] == r.first_index and doc["tree_size"] == 2
    res = sqlite_cli("audit", "prove", "EV-nope")
    assert res.exit_code == 2 and "no event" in res.output
    res = sqlite_cli("audit", "witness-init", str(tmp_path / "wit"), "--name", "w.example/1")
    assert res.exit_code == 0
    vkey = res.output.strip().splitlines()[-1]
    res = sqlite_cli("audit", "checkpoint", "--witness", str(tmp_path / "wit"))
    assert res.exit_code == 0 and "w.example/1" in res.output
    res = sqlite_cli("audit", "verify", "--witness-key", vkey)
    assert res.exit_code == 0 and "cosigned by w.example/1" in res.output
    res = sqlite_cli("audit", "erase", "2026-01")
    assert res.exit_code == 2 and "--yes" in res.output
    res = sqlite_cli("audit", "verify", "--evidence", str(tmp_path / "missing.zip"))
    assert res.exit_code == 2
