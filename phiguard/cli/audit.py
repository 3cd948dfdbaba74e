"""``phiguard audit …``: verify, prove, evidence, checkpoint, witness, erase.

Other modules add commands to the same group by importing :data:`audit_app` (``audit
export`` lives in ``phiguard/cli/audit_export.py``).
"""

from __future__ import annotations

import base64
import getpass
import importlib
from pathlib import Path
from typing import Annotated, Any

import typer

from phiguard.cli.common import FormatOpt, HomeOpt, err, open_app, out, print_json
from phiguard.clock import parse_ts
from phiguard.errors import IntegrityError, NotFound, PhiguardError, UsageError

audit_app = typer.Typer(
    name="audit",
    help="The tamper-evident audit log: verify it, prove entries, export evidence.",
    no_args_is_help=True,
)

WitnessKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--witness-key", help="A witness's verifier key (vkey) to require cosignatures from."
    ),
]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@audit_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="Check this evidence bundle instead of the log."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key", help="With --evidence: the log key (vkey) the bundle must be signed by."
        ),
    ] = None,
    witness_key: WitnessKeyOpt = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Re-check every entry, node and signed checkpoint (exit 1 and say where if anything is
    off)."""
    if evidence is not None:
        from phiguard.audit.evidence import verify

        if not evidence.is_file():
            raise UsageError(f"no such bundle: {evidence}")
        problems, summary = verify(evidence, key=key, witnesses=witness_key or [])
        if fmt == "json":
            print_json({"ok": not problems, **summary, "problems": problems})
        else:
            for k, v in summary.items():
                out.print(f"{k}: {v}", markup=False)
            for p in problems:
                err.print(f"PROBLEM {p}", markup=False)
            out.print(
                "evidence bundle VERIFIED"
                if not problems
                else f"evidence bundle NOT VERIFIED: {len(problems)} problems"
            )
        if problems:
            raise typer.Exit(1)
        return
    from phiguard.audit.verify import Finding, verify_log

    app = open_app(ctx, home)
    report = verify_log(app.audit, witnesses=tuple(witness_key or ()))
    report.findings.extend(_completeness_findings(app, Finding))
    if fmt == "json":
        print_json(report.to_json())
    else:
        latest = report.latest
        out.print(
            f"entries: {report.entries:,} ({report.actions:,} phiguard actions, "
            f"{report.erased_entries:,} erased by retention)"
        )
        out.print(f"checkpoints: {report.checkpoints:,}")
        if latest is not None:
            out.print(f"latest: size {latest.size:,} root {_b64(latest.root)}", markup=False)
        for name, ts in report.cosigners.items():
            out.print(f"cosigned by {name} (latest at {ts})", markup=False)
        for f in report.findings:
            (err if f.error else out).print(
                ("PROBLEM " if f.error else "note ") + str(f), markup=False
            )
        out.print(
            "audit log VERIFIED"
            if report.ok
            else f"audit log NOT VERIFIED: {sum(f.error for f in report.findings)} problems"
        )
    if not report.ok:
        raise typer.Exit(1)


def _completeness_findings(app: Any, finding: Any) -> list[Any]:
    """Per-source completeness, when the ingestion part provides ``verify_findings(app)``
    returning ``(where, message, is_error)`` triples (docs/dev/contracts.md)."""
    try:
        module = importlib.import_module("phiguard.audit.completeness")
    except ModuleNotFoundError:
        return []
    hook = getattr(module, "verify_findings", None)
    if hook is None:
        return []
    try:
        return [finding(str(w), str(m), bool(e)) for w, m, e in hook(app)]
    except PhiguardError as exc:
        return [finding("completeness", f"could not be checked: {exc}", True)]


@audit_app.command("prove")
def prove_cmd(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="The event_id (or `#N` for log entry N).")],
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Print an inclusion proof of one event against the latest signed checkpoint."""
    from phiguard.audit.checkpoint import Checkpoint, SignedNote
    from phiguard.audit.evidence import select_events

    app = open_app(ctx, home)
    log = app.audit
    if event_id.startswith("#") and event_id[1:].isdigit():
        indices = [int(event_id[1:])]
    else:
        indices = select_events(app, account=None, since=None, until=None, event_id=event_id)
        if not indices:
            indices = [
                e.index for e in log.find(f'"{event_id}"' if '"' not in event_id else event_id)
            ][:1] or [e.index for e in log.find(event_id)][:1]
    if not indices:
        raise NotFound(f"no event {event_id!r} in the log")
    index = indices[0]
    note = log.latest_checkpoint()
    cp = Checkpoint.parse_body(SignedNote.parse(note).text) if note else None
    if cp is None or index >= cp.size:
        log.publish()
        note = log.latest_checkpoint()
        assert note is not None
        cp = Checkpoint.parse_body(SignedNote.parse(note).text)
    assert note is not None
    proof = log.inclusion_proof(index, cp.size)
    leaf = log.leaf_hash(index)
    doc = {
        "event_id": event_id,
        "index": index,
        "tree_size": cp.size,
        "leaf_hash": _b64(leaf),
        "proof": [_b64(p) for p in proof],
        "root": _b64(cp.root),
        "checkpoint": note.decode(),
    }
    if fmt == "json":
        print_json(doc)
        return
    out.print(f"event {event_id} is entry {index:,} of the log", markup=False)
    out.print(f"leaf hash: {doc['leaf_hash']}", markup=False)
    out.print(
        f"inclusion proof ({len(proof)} hashes, RFC 9162) against tree size {cp.size:,}:",
        markup=False,
    )
    for p in proof:
        out.print(f"  {_b64(p)}", markup=False)
    out.print("signed checkpoint:", markup=False)
    out.print(note.decode().rstrip("\n"), markup=False, soft_wrap=True)


@audit_app.command("evidence")
def evidence_cmd(
    ctx: typer.Context,
    out_file: Annotated[Path, typer.Argument(metavar="OUT.zip", help="Where to write the bundle.")],
    account: Annotated[
        str | None, typer.Option("--account", help="Events of this account_id.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this time (ISO-8601).")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to (not including) this time.")
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Write an evidence bundle anyone can check offline with Python and `cryptography`."""
    from phiguard.audit.evidence import build, select_events
    from phiguard.audit.tags import Tag

    try:
        t0 = parse_ts(since) if since else None
        t1 = parse_ts(until) if until else None
    except ValueError as exc:
        raise UsageError(f"not an ISO-8601 time: {exc}") from exc
    if out_file.exists():
        raise UsageError(f"{out_file} exists; choose a new file name")
    app = open_app(ctx, home)
    indices = select_events(app, account=account, since=t0, until=t1)
    if not indices:
        raise NotFound("no logged event matches that account and time window")
    app.audit.publish()
    selection = {
        "account_id": account,
        "since": t0.isoformat() if t0 else None,
        "until": t1.isoformat() if t1 else None,
    }
    path = build(app.audit, indices, out_file, selection=selection)
    app.record(
        Tag.EVIDENCE_EXPORTED,
        actor=_actor(),
        subject=f"account:{account}" if account else "",
        entries=len(indices),
        file=path.name,
    )
    out.print(
        f"wrote {path} with {len(indices):,} entries; check it with "
        f"`python3 verify.py {path.name}` (inside the zip) or "
        f"`phiguard audit verify --evidence {path}`",
        markup=False,
    )


@audit_app.command("checkpoint")
def checkpoint_cmd(
    ctx: typer.Context,
    witness: Annotated[
        Path | None, typer.Option("--witness", help="Have this witness folder cosign it.")
    ] = None,
    fmt: FormatOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Seal whatever is pending and print the latest signed checkpoint."""
    from phiguard.audit.checkpoint import LocalWitness

    app = open_app(ctx, home)
    app.audit.publish()
    note = (
        app.audit.cosign_latest(LocalWitness(witness)) if witness else app.audit.latest_checkpoint()
    )
    if note is None:
        raise IntegrityError("the log has no checkpoint")
    if fmt == "json":
        print_json({"checkpoint": note.decode(), "vkey": app.audit.config["vkey"]})
    else:
        out.print(note.decode().rstrip("\n"), markup=False, soft_wrap=True)
        out.print(f"\nlog key: {app.audit.config['vkey']}", markup=False, soft_wrap=True)


@audit_app.command("witness-init")
def witness_init_cmd(
    folder: Annotated[
        Path, typer.Argument(help="A folder for the witness key (keep it away from the home).")
    ],
    name: Annotated[
        str, typer.Option("--name", help="The witness's name, e.g. witness.example.hk/w1.")
    ] = "witness.local/w1",
) -> None:
    """Create a witness key that cosigns checkpoints only when they are consistent."""
    from phiguard.audit.checkpoint import LocalWitness

    w = LocalWitness.create(folder, name)
    out.print(f"witness created in {folder}; its verifier key:", markup=False)
    out.print(w.vkey, markup=False, soft_wrap=True)


@audit_app.command("erase")
def erase_cmd(
    ctx: typer.Context,
    period: Annotated[str, typer.Argument(help="The month to crypto-erase, YYYY-MM.")],
    keep_months: Annotated[
        int, typer.Option("--keep-months", help="Refuse months younger than this.")
    ] = 0,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the entries become unreadable forever.")
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Retention: destroy a past month's key; its entries become unreadable, proofs still hold."""
    from phiguard.audit.retention import erase_period

    if not yes:
        raise UsageError("erasure cannot be undone; repeat with --yes")
    app = open_app(ctx, home)
    done = erase_period(app, period, actor=_actor(), keep_months=keep_months)
    out.print(
        f"period {done.period}: key destroyed, {done.entries:,} entries now unreadable; "
        f"logged as entry {done.recorded_at_index:,}",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
