"""Rotating the checkpoint signing key: the handover is sealed, signed by the old key, and
followed by `audit verify` and by evidence bundles; the retired key can sign nothing after it."""

from __future__ import annotations

from pathlib import Path

from phiguard.app import App
from phiguard.audit.bundle_verifier import verify_bundle
from phiguard.audit.evidence import export
from phiguard.audit.verify import verify_log
from phiguard.crypto.keyring import Keyring


def _touch(app: App, n: int) -> None:
    for i in range(n):
        app.record("phiguard:test:touch", actor="test", subject=str(i))
    app.audit.publish()


def test_rotation_is_sealed_and_followed(sqlite_app: App, tmp_path: Path) -> None:
    _touch(sqlite_app, 3)
    old_vkey = sqlite_app.audit.signer.vkey
    note = sqlite_app.audit.rotate_signing_key(actor="test")
    new_vkey = sqlite_app.audit.signer.vkey
    assert new_vkey != old_vkey and f"phiguard-next-key {new_vkey}".encode() in note
    _touch(sqlite_app, 3)
    assert sqlite_app.audit.latest_checkpoint() != note
    report = verify_log(sqlite_app.audit)
    assert report.ok, [str(f) for f in report.findings]
    assert report.key_chain == [new_vkey]
    actions = [
        e for e in sqlite_app.audit.records() if e.kind == "action" and b"signing:rotated" in e.data
    ]
    assert len(actions) == 1 and new_vkey.encode() in actions[0].data
    # a reopened home signs with the new key and still verifies
    sqlite_app.close()
    again = App.open(sqlite_app.settings)
    try:
        _touch(again, 1)
        assert verify_log(again.audit).ok
        bundle = export(again, tmp_path / "ev.zip")
        problems, summary = verify_bundle(str(bundle))
        assert problems == [] and summary["checkpoints"] >= 1
    finally:
        again.close()


def test_a_checkpoint_by_the_retired_key_after_the_handover_is_rejected(sqlite_app: App) -> None:
    _touch(sqlite_app, 2)
    old_seed = sqlite_app.keyring.signing_seed
    sqlite_app.audit.rotate_signing_key(actor="test")
    # an attacker who kept the old key signs a newer checkpoint with it
    ring: Keyring = sqlite_app.keyring
    ring.signing_seed = old_seed
    sqlite_app.audit.__dict__.pop("signer", None)
    _touch(sqlite_app, 2)
    ring.signing_seed = Keyring.load(sqlite_app.home.keys, ring.provider).signing_seed
    report = verify_log(sqlite_app.audit)
    assert not report.ok
    assert any("checkpoint" in f.where for f in report.findings)


def test_cli_rotate_signing(sqlite_cli) -> None:  # type: ignore[no-untyped-def]
    assert sqlite_cli("init").exit_code == 0
    res = sqlite_cli("keys", "rotate", "--signing")
    assert res.exit_code == 0, res.output
    assert "phiguard-next-key" in res.stdout
    assert sqlite_cli("audit", "verify").exit_code == 0
