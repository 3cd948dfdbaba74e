"""Evidence bundles: a zip an investigator, a court or the Privacy Commissioner checks offline.

A bundle holds the chosen entries with their full leaf data (salt included, so the leaf hash
can be recomputed), an inclusion proof of each against the latest signed checkpoint, the
checkpoints that first sealed them plus the latest one, the consistency proofs between
consecutive checkpoints, the log's public key, and ``verify.py``
(:mod:`phiguard.audit.bundle_verifier`, copied verbatim) that needs only Python and
``cryptography``. ``phiguard audit verify --evidence`` runs the same code.

Entries are selected by account and time through the analytics store's ``leaf_index``
column (docs/dev/contracts.md), or given as explicit log indices.
"""

from __future__ import annotations

import base64
import bisect
import json
import zipfile
from collections.abc import Iterable
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phiguard.audit import bundle_verifier
from phiguard.audit.checkpoint import Checkpoint, SignedNote
from phiguard.errors import NotFound, UsageError

if TYPE_CHECKING:
    from phiguard.app import App
    from phiguard.audit.log import AuditLog

README = """phiguard audit evidence bundle
==============================

What this is: entries of a hospital's tamper-evident access log, each with a proof that it
is included in a log whose state (size and root hash) the hospital signed ("checkpoints").

Check it yourself, offline:

    pip install cryptography
    python3 verify.py {name}

or with phiguard:  phiguard audit verify --evidence {name}

The verifier prints the log's public key; compare it with the key the hospital published,
or pass it with --key so that a bundle signed by another key is rejected.
Files: manifest.json (what was selected, when), key.vkey (the log's public key),
checkpoints/ (signed notes, C2SP tlog-checkpoint), consistency.json (RFC 9162 proofs between
them), entries.jsonl (one entry per line: index, leaf data, inclusion proof, the exact bytes).
"""


def select_events(
    app: App,
    *,
    account: str | None,
    since: datetime | None,
    until: datetime | None,
    event_id: str | None = None,
) -> list[int]:
    """Log indices of events in the analytics store matching the filters (contract: the
    Parquet store under ``HOME/events/events`` with ``leaf_index``)."""
    import duckdb

    files = list((app.home.events / "events").rglob("*.parquet"))
    if not files:
        return []
    where: list[str] = ["leaf_index IS NOT NULL"]
    params: list[object] = []
    if account is not None:
        where.append("account_id = ?")
        params.append(account)
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    if event_id is not None:
        where.append("event_id = ?")
        params.append(event_id)
    glob = str(app.home.events / "events" / "**" / "*.parquet")
    sql = (
        "SELECT DISTINCT leaf_index FROM "
        f"read_parquet('{glob}', hive_partitioning=true, union_by_name=true) "
        f"WHERE {' AND '.join(where)} ORDER BY leaf_index"
    )
    with duckdb.connect() as con:
        return [int(r[0]) for r in con.execute(sql, params).fetchall()]


def build(log: AuditLog, indices: Iterable[int], out: Path, *, selection: dict[str, Any]) -> Path:
    """Write the bundle for ``indices`` to ``out`` (a .zip). The log must be sealed (a
    checkpoint covering every chosen entry); :meth:`AuditLog.publish` does that."""
    chosen = sorted(set(indices))
    latest_note = log.latest_checkpoint()
    if latest_note is None:
        raise NotFound("the log has no signed checkpoint yet")
    latest = Checkpoint.parse_body(SignedNote.parse(latest_note).text)
    if chosen and chosen[-1] >= latest.size:
        raise UsageError(
            f"entry {chosen[-1]} is not covered by a checkpoint yet "
            "(run `phiguard audit checkpoint`)"
        )
    notes = list(log.checkpoints())
    sizes = [Checkpoint.parse_body(SignedNote.parse(n).text).size for n in notes]
    keep: dict[int, bytes] = {latest.size: latest_note}
    for i in chosen:
        k = bisect.bisect_right(sizes, i)  # first checkpoint with size > i: the one that sealed it
        keep.setdefault(sizes[k], notes[k])
    ordered = sorted(keep)
    consistency = [
        {"from": a, "to": b, "proof": [_b64(p) for p in log.consistency_proof(a, b)]}
        for a, b in pairwise(ordered)
        if a != b
    ]
    lines = []
    want = set(chosen)
    for run_start, run_stop in _runs(chosen):
        for e in log.records(run_start, run_stop, skip_erased=True):
            if e.index not in want:
                continue
            lines.append(
                json.dumps(
                    {
                        "index": e.index,
                        "kind": e.kind,
                        "source": e.source,
                        "logged_at": e.ts.isoformat(),
                        "data": e.data.decode("utf-8", "replace"),
                        "data_b64": _b64(e.data),
                        "leaf": _b64(e.leaf),
                        "tree_size": latest.size,
                        "proof": [_b64(p) for p in log.inclusion_proof(e.index, latest.size)],
                    },
                    ensure_ascii=False,
                )
            )
    out = out if out.suffix == ".zip" else out.with_name(out.name + ".zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": 1,
        "origin": log.origin,
        "created": log.app.clock.now().isoformat(),
        "selection": selection,
        "entries": len(lines),
        "erased_or_missing": len(chosen) - len(lines),
        "latest": {"size": latest.size, "root": _b64(latest.root)},
    }
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt", README.format(name=out.name))
        z.writestr("manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        z.writestr("key.vkey", str(log.config["vkey"]) + "\n")
        # signing-key handovers (checkpoints naming the next key, signed by the one before)
        for n, note in enumerate(_handovers(log)):
            z.writestr(f"keychain/{n:04d}.note", note)
        for n, size in enumerate(ordered):
            z.writestr(f"checkpoints/{n:04d}-{size}.note", keep[size])
        z.writestr("consistency.json", json.dumps(consistency, indent=1) + "\n")
        z.writestr("entries.jsonl", "".join(line + "\n" for line in lines))
        z.writestr("verify.py", Path(bundle_verifier.__file__).read_text())
    tmp.replace(out)
    return out


def _handovers(log: AuditLog) -> list[bytes]:
    from phiguard.audit.checkpoint import NEXT_KEY

    return [
        note for note in log.checkpoints() if ("\n" + NEXT_KEY).encode() in note.split(b"\n\n")[0]
    ]


def export(
    app: App, out: Path, *, indices: Iterable[int] = (), selection: dict[str, Any] | None = None
) -> Path:
    """Seal what is pending and write a bundle (the latest checkpoint alone when no entries
    are chosen: proof of the log's state at that moment). Used by incident evidence too."""
    app.audit.publish()
    return build(
        app.audit, indices, out, selection=selection or {"entries": "none: log state only"}
    )


def verify(
    path: Path, *, key: str | None = None, witnesses: list[str] | None = None
) -> tuple[list[str], dict[str, Any]]:
    """Check a bundle exactly as its own verify.py does."""
    try:
        return bundle_verifier.verify_bundle(str(path), key, witnesses)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        return [f"not a readable evidence bundle: {exc}"], {}


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and i <= runs[-1][1] + 64:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
