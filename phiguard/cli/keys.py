"""``phiguard keys status|rotate|reencrypt|retire``."""

from __future__ import annotations

from typing import Annotated

import typer

from phiguard.cli.common import FormatOpt, HomeOpt, open_app, out, print_json
from phiguard.crypto import rotation
from phiguard.errors import UsageError

keys_app = typer.Typer(help="Key status and rotation (data keys, the KEK, the log signing key).")


@keys_app.command("status")
def status(ctx: typer.Context, fmt: FormatOpt = "text", home: HomeOpt = None) -> None:
    """Which keys the home has, which are active, and how many rows each data key encrypts."""
    doc = rotation.status(open_app(ctx, home))
    if fmt == "json":
        print_json(doc)
        return
    out.print(
        f"key-encryption key: {doc['provider']}"
        + (f" (KEK {doc['active_kek']} of {doc['kek_ids']})" if "kek_ids" in doc else "")
    )
    out.print(
        f"data keys: {doc['data_keys']} (active {doc['active_data_key']}); rows by key: "
        f"{doc['rows_by_data_key'] or 'none'}"
    )
    out.print(
        f"audit period keys: {doc['audit_period_keys']}; backup recipients: "
        f"{doc['backup_recipients']}"
    )
    if doc.get("signing_key"):
        out.print(f"log signing key: {doc['signing_key']}")


@keys_app.command("rotate")
def rotate(
    ctx: typer.Context,
    data: Annotated[bool, typer.Option("--data", help="New data-encryption key version.")] = False,
    kek: Annotated[
        bool, typer.Option("--kek", help="New key-encryption key; re-wraps keys.")
    ] = False,
    signing: Annotated[
        bool, typer.Option("--signing", help="New log signing key, recorded in the log.")
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Rotate one kind of key. Data is never re-encrypted in the foreground."""
    if sum((data, kek, signing)) != 1:
        raise UsageError("choose exactly one of --data, --kek, --signing")
    app = open_app(ctx, home)
    if data:
        v = rotation.rotate_data_key(app)
        out.print(f"data key {v} is now active; run `phiguard keys reencrypt` to move old rows")
    elif kek:
        label = rotation.rotate_kek(app)
        out.print(f"key-encryption key rotated ({label}); every wrapped key re-wrapped")
    else:
        rotate_signing = getattr(app.audit, "rotate_signing_key", None)
        if rotate_signing is None:
            raise UsageError("this audit log cannot rotate its signing key yet")
        note = rotate_signing(actor="cli")
        out.print("log signing key rotated; the rotation is sealed in the log:")
        out.print(note if isinstance(note, str) else note.decode(), markup=False)


@keys_app.command("reencrypt")
def reencrypt(
    ctx: typer.Context,
    batch: Annotated[int, typer.Option(help="Rows per committed batch.")] = 2000,
    home: HomeOpt = None,
) -> None:
    """Move rows still under an old data key to the active one (resumable, runs online)."""
    moved = rotation.reencrypt(open_app(ctx, home), batch=batch)
    out.print(f"re-encrypted {moved:,} rows under the active data key")


@keys_app.command("retire")
def retire(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Data key version no row uses any more.")],
    home: HomeOpt = None,
) -> None:
    """Delete an old data key version once nothing is encrypted under it."""
    rotation.retire_data_key(open_app(ctx, home), version)
    out.print(f"data key {version} retired")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
