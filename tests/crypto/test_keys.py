"""Key rotation: data keys with online re-encryption, the KEK (local and Vault Transit)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from phiguard.app import App
from phiguard.crypto import rotation
from phiguard.errors import Conflict, CryptoError, UsageError
from phiguard.settings import Settings
from phiguard.storage.importer import import_file
from phiguard.storage.models import Patient
from tests.crypto.fake_vault import fake_vault
from tests.factories import patient_rows, write_csv


def names(app: App) -> dict[str, str]:
    with app.session() as s:
        return {
            p.patient_id: app.cipher.decrypt_json(p.pii, b"patient:pii")["name_en"]
            for p in s.scalars(select(Patient))
        }


def test_data_key_rotation_then_reencrypt_then_retire(app: App, tmp_path: Path) -> None:
    rows = patient_rows(25)
    import_file(app, "patients", write_csv(tmp_path / "p.csv", rows))
    before = names(app)
    v2 = rotation.rotate_data_key(app)
    assert v2 == 2 and rotation.status(app)["rows_by_data_key"] == {"1": 25}
    assert names(app) == before  # old tokens still decrypt
    with pytest.raises(Conflict, match="still encrypts"):
        rotation.retire_data_key(app, 1)
    assert rotation.reencrypt(app, batch=7) == 25
    assert rotation.reencrypt(app) == 0  # resumable / idempotent
    assert rotation.status(app)["rows_by_data_key"] == {"2": 25}
    rotation.retire_data_key(app, 1)
    reopened = App.open(app.settings)
    try:
        assert names(reopened) == before and sorted(reopened.keyring.data_keys) == [2]
    finally:
        reopened.close()
    with pytest.raises(UsageError):
        rotation.retire_data_key(app, 2)


def test_local_kek_rotation_rewraps_everything(sqlite_app: App, tmp_path: Path) -> None:
    import_file(sqlite_app, "patients", write_csv(tmp_path / "p.csv", patient_rows(5)))
    sqlite_app.record("phiguard:test:touch", actor="test")  # makes sure a period key exists
    before = names(sqlite_app)
    kek_file = sqlite_app.home.keys / "kek.json"
    old = kek_file.read_bytes()
    rotation.rotate_kek(sqlite_app)
    assert kek_file.read_bytes() != old
    assert (kek_file.stat().st_mode & 0o777) == 0o600
    reopened = App.open(sqlite_app.settings)
    try:
        assert names(reopened) == before
        assert reopened.keyring.provider.kek_ids == [2]  # type: ignore[attr-defined]
        from phiguard.audit.verify import verify_log

        assert verify_log(reopened.audit).ok  # audit entries still decrypt with re-wrapped keys
    finally:
        reopened.close()


def test_vault_transit_provider_end_to_end(tmp_path: Path) -> None:
    with fake_vault() as (url, state):
        settings = Settings(
            home=tmp_path / "h",
            key_provider="vault",
            vault_addr=url,
            vault_token=SecretStr(state.token),
        )
        app = App.init(settings)
        import_file(app, "patients", write_csv(tmp_path / "p.csv", patient_rows(4)))
        before = names(app)
        app.close()

        def wrapped() -> str:
            doc = json.loads((tmp_path / "h" / "keys" / "keyring.json").read_text())
            return base64.b64decode(doc["data"]["1"]).decode()

        assert wrapped().startswith("vault:v1:")
        assert not (tmp_path / "h" / "keys" / "kek.json").exists()
        app = App.open(settings)
        rotation.rotate_kek(app)
        app.close()
        assert wrapped().startswith("vault:v2:") and "keys" in state.calls
        app = App.open(settings)
        try:
            assert names(app) == before
        finally:
            app.close()
        wrong = settings.model_copy(update={"vault_token": SecretStr("s.wrong")})
        with pytest.raises(CryptoError, match="Vault transit decrypt failed"):
            App.open(wrong)


def test_vault_home_without_vault_settings_is_a_clear_error(tmp_path: Path) -> None:
    with fake_vault() as (url, state):
        App.init(
            Settings(
                home=tmp_path / "h",
                key_provider="vault",
                vault_addr=url,
                vault_token=SecretStr(state.token),
            )
        ).close()
    with pytest.raises(UsageError, match="PHIGUARD_VAULT_ADDR"):
        App.open(Settings(home=tmp_path / "h"))


def test_every_encrypted_column_is_listed_for_rotation() -> None:
    """A LargeBinary column named like a token (pii/person/…_enc) must be in the rotation list."""
    import importlib
    import pkgutil

    import phiguard
    from phiguard.storage.base import Base

    for m in pkgutil.walk_packages(phiguard.__path__, "phiguard."):
        if m.name.endswith(".models"):
            importlib.import_module(m.name)
    listed = {(c.table.name, c.column) for c in rotation.encrypted_columns()}
    suspects = {
        (t.name, c.name)
        for t in Base.metadata.tables.values()
        for c in t.columns
        if c.name in {"pii", "person"} or c.name.endswith("_enc")
    }
    assert suspects <= listed, f"encrypted columns missing from rotation: {suspects - listed}"


def test_cli_keys(sqlite_cli) -> None:  # type: ignore[no-untyped-def]
    assert sqlite_cli("init").exit_code == 0
    res = sqlite_cli("keys", "status", "--format", "json")
    assert res.exit_code == 0 and '"active_data_key": 1' in res.stdout
    assert sqlite_cli("keys", "rotate", "--data").exit_code == 0
    assert sqlite_cli("keys", "reencrypt").exit_code == 0
    assert sqlite_cli("keys", "retire", "1").exit_code == 0
    assert sqlite_cli("keys", "rotate", "--kek").exit_code == 0
    assert sqlite_cli("keys", "rotate").exit_code == 2
