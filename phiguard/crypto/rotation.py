"""Key rotation: data keys (new version, background re-encryption), the KEK (re-wrap only).

* **Data key**: a new version becomes active at once; new writes use it, old tokens still
  decrypt (each token names its key version). :func:`reencrypt` then moves old rows over in
  small committed batches — resumable, safe to run while phiguard serves — after which
  :func:`retire_data_key` can drop the old version.
* **KEK**: only wrapped keys are re-wrapped (the keyring and the audit log's period keys), a
  few hundred bytes each, never the data. Local KEKs follow add → re-wrap → drop, each step an
  atomic file replacement; Vault KEKs are rotated and re-wrapped inside Vault.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, update

from phiguard.app import App
from phiguard.audit.keys import wrap_context
from phiguard.audit.tags import Tag
from phiguard.crypto.fields import FieldCipher
from phiguard.crypto.keyring import KEYRING_FILE, LocalKeyProvider, write_private
from phiguard.errors import Conflict, UsageError
from phiguard.storage.models import Account, Patient


@dataclass(frozen=True)
class EncryptedColumn:
    table: Table
    key: str
    column: str
    context: bytes


def encrypted_columns() -> list[EncryptedColumn]:
    """Every column that holds field-cipher tokens. A new one must be listed here so that
    rotation re-encrypts it (tests/crypto checks the list against the models)."""
    cols = [
        EncryptedColumn(Patient.__table__, "patient_id", "pii", b"patient:pii"),  # type: ignore[arg-type]
        EncryptedColumn(Account.__table__, "account_id", "person", b"account:person"),  # type: ignore[arg-type]
    ]
    return cols


def status(app: App) -> dict[str, Any]:
    ring = app.keyring
    provider = ring.provider
    doc: dict[str, Any] = {
        "provider": provider.name,
        "data_keys": sorted(ring.data_keys),
        "active_data_key": ring.active_data_key,
        "rows_by_data_key": _rows_by_version(app),
        "audit_period_keys": len(list((app.home.audit / "keys").glob("*.key"))),
        "backup_recipients": _count_recipients(app),
    }
    if isinstance(provider, LocalKeyProvider):
        doc["kek_ids"] = provider.kek_ids
        doc["active_kek"] = provider.active_id
    try:
        doc["signing_key"] = app.audit.signer.vkey  # the C2SP verifier key: name+id+public key
    except Exception:  # the log may not expose its signer in every version
        doc["signing_key"] = None
    return doc


def _count_recipients(app: App) -> int:
    path = app.home.keys / "backup-recipients.txt"
    if not path.exists():
        return 0
    return sum(
        1 for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    )


def _rows_by_version(app: App) -> dict[str, int]:
    counts: dict[str, int] = {}
    with app.engine.connect() as conn:
        for col in encrypted_columns():
            for (token,) in conn.execute(select(col.table.c[col.column])):
                if token:
                    counts[str(token[1])] = counts.get(str(token[1]), 0) + 1
    return counts


def rotate_data_key(app: App, *, actor: str = "cli") -> int:
    ring = app.keyring
    version = max(ring.data_keys) + 1
    if version > 255:
        raise Conflict("data key versions exhausted")
    ring.data_keys[version] = secrets.token_bytes(32)
    ring.active_data_key = version
    ring.save(app.home.keys)
    app.__dict__.pop("cipher", None)  # the next use builds a cipher with the new active key
    app.record(Tag.DATA_KEY_ROTATED, actor=actor, subject=f"data-key-{version}")
    return version


def reencrypt(app: App, *, batch: int = 2000, actor: str = "cli") -> int:
    """Re-encrypt every token not under the active data key; returns how many rows moved."""
    cipher = FieldCipher(app.keyring)
    active = app.keyring.active_data_key
    moved = 0
    for col in encrypted_columns():
        key_col, tok_col = col.table.c[col.key], col.table.c[col.column]
        last: Any = None
        while True:
            with app.engine.begin() as conn:
                q = select(key_col, tok_col).order_by(key_col).limit(batch)
                if last is not None:
                    q = q.where(key_col > last)
                rows = conn.execute(q).all()
                if not rows:
                    break
                last = rows[-1][0]
                stale = [(k, t) for k, t in rows if t and t[1] != active]
                for k, t in stale:
                    fresh = cipher.encrypt(cipher.decrypt(t, col.context), col.context)
                    conn.execute(update(col.table).where(key_col == k).values({col.column: fresh}))
                moved += len(stale)
    app.record(Tag.DATA_REENCRYPTED, actor=actor, subject=f"data-key-{active}", rows=moved)
    return moved


def retire_data_key(app: App, version: int, *, actor: str = "cli") -> None:
    ring = app.keyring
    if version == ring.active_data_key:
        raise UsageError("cannot retire the active data key")
    if version not in ring.data_keys:
        raise UsageError(f"no data key {version}")
    if _rows_by_version(app).get(str(version)):
        raise Conflict(
            f"data key {version} still encrypts rows: run `phiguard keys reencrypt` first"
        )
    del ring.data_keys[version]
    ring.save(app.home.keys)
    app.record(Tag.DATA_KEY_ROTATED, actor=actor, subject=f"data-key-{version}", retired=True)


def rotate_kek(app: App, *, actor: str = "cli") -> str:
    ring, provider = app.keyring, app.keyring.provider
    period_keys = sorted((app.home.audit / "keys").glob("*.key"))
    if isinstance(provider, LocalKeyProvider):
        # add → re-wrap → drop; a crash between steps leaves both KEKs and every blob readable
        new_id = provider.add_kek()
        ring.save(app.home.keys)
        for path in period_keys:
            ctx = wrap_context(path.stem)
            write_private(path, provider.wrap(provider.unwrap(path.read_bytes(), ctx), ctx))
        provider.drop_other_keks()
        label = f"local-kek-{new_id}"
    else:
        rotate = getattr(provider, "rotate", None)
        rewrap = getattr(provider, "rewrap", None)
        if rotate is None or rewrap is None:
            raise UsageError(f"the {provider.name} key provider cannot rotate")
        rotate()
        doc = json.loads((app.home.keys / KEYRING_FILE).read_text())
        ring.save(app.home.keys)  # wraps under the newest Vault key version
        for path in period_keys:
            write_private(path, rewrap(path.read_bytes()))
        label = f"{provider.name}-kek-rotated-from-v{doc.get('version', 1)}"
    app.record(Tag.KEK_ROTATED, actor=actor, subject=label, wrapped=1 + len(period_keys))
    return label
