"""``phiguard backup keygen|create|verify|restore|prune``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phiguard.backup import service
from phiguard.cli.common import FormatOpt, HomeOpt, open_app, out, print_json

backup_app = typer.Typer(help="Encrypted backups of the whole home, and the restore drill.")
IdentityOpt = Annotated[
    Path,
    typer.Option("--identity", "-i", help="age identity file (the private key, kept offline)."),
]


@backup_app.command("keygen")
def keygen(
    ctx: typer.Context,
    identity_out: Annotated[Path, typer.Argument(help="Where to write the new private identity.")],
    home: HomeOpt = None,
) -> None:
    """Create a backup key pair: the identity goes to IDENTITY_OUT (move it off this machine),
    the public recipient is added to the home so every backup is encrypted to it."""
    app = open_app(ctx, home)
    recipient = service.keygen(app, identity_out)
    out.print(f"backups will be encrypted to {recipient}")
    out.print(
        f"identity written to {identity_out} (0600): keep it offline; "
        "without it no backup can be read"
    )


@backup_app.command("create")
def create(
    ctx: typer.Context,
    out_file: Annotated[Path, typer.Argument(metavar="OUT", help="The backup file to write.")],
    recipient: Annotated[
        list[str] | None, typer.Option("--recipient", "-r", help="Extra age recipient (age1…).")
    ] = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """An encrypted, compressed, consistent snapshot of the home, taken while phiguard runs."""
    app = open_app(ctx, home)
    summary = service.create(app, out_file, extra_recipients=recipient or [])
    if fmt == "json":
        print_json(summary.as_dict())
    else:
        out.print(
            f"backup written: {out_file} ({summary.bytes:,} bytes, {summary.files} files, "
            f"audit log at {summary.tree_size:,} entries)"
        )


@backup_app.command("verify")
def verify(
    backup: Annotated[Path, typer.Argument(help="The backup file.")],
    identity: IdentityOpt,
    fmt: FormatOpt = "text",
) -> None:
    """Check that a backup decrypts and every file matches its manifest, without restoring."""
    result = service.verify(backup, identity)
    if fmt == "json":
        print_json(result)
    else:
        out.print(
            f"backup OK: {result['files']} files, audit log at {result['tree_size']:,} entries, "
            f"taken {result['created']}"
        )


@backup_app.command("restore")
def restore(
    backup: Annotated[Path, typer.Argument(help="The backup file.")],
    identity: IdentityOpt,
    to: Annotated[Path, typer.Option("--to", help="A NEW home folder to restore into.")],
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="For a home whose database was PostgreSQL.")
    ] = None,
    fmt: FormatOpt = "text",
) -> None:
    """Restore into a new home, then verify its audit log against the backup's checkpoint."""
    result = service.restore(backup, identity, to, database_url=database_url)
    if fmt == "json":
        print_json(result)
    else:
        out.print(
            f"restored into {to}: {result['files']} files; audit log verified "
            f"({result['tree_size']:,} entries, contains the backup's checkpoint)"
        )


@backup_app.command("prune")
def prune(
    folder: Annotated[Path, typer.Argument(help="Folder of backups.")],
    keep: Annotated[int, typer.Option(help="How many of the newest to keep.")] = 30,
) -> None:
    """Delete all but the newest KEEP backups in FOLDER."""
    gone = service.prune(folder, keep)
    out.print(f"deleted {len(gone)} old backup(s)")


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
