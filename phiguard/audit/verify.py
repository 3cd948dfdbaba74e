"""Re-check a whole audit log from its files: ``phiguard audit verify``.

What is checked, and what each check catches (docs/dev/audit.md has the threat model):

* every journal frame: checksums, position, batch structure; its entries decrypt under the
  period key and re-hash to the leaf hashes stored beside them (a changed, moved, dropped
  or replaced entry);
* every node file: each level re-hashed from the one below and of exactly the right length;
* every signed checkpoint: the chain of records, the Ed25519 signature under the home's key
  (and cosignatures by witnesses the caller trusts), sizes that never shrink, and a root
  equal to the root recomputed from the verified tree — so all checkpoints are mutually
  consistent and consistent with every entry;
* ``log.json`` equals the sealed entry 0; ``state.json`` equals what the files imply;
* a period without its key must have been erased by a logged ``audit:period:erased`` action.

Nothing is modified. The result is a :class:`Report` of findings naming the entry, frame,
file or checkpoint at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phiguard.audit import journal as jn
from phiguard.audit import verify_work as vw
from phiguard.audit.checkpoint import (
    NEXT_KEY,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    open_checkpoint,
)
from phiguard.audit.merkle import Frontier
from phiguard.audit.tags import Tag
from phiguard.errors import CryptoError, IntegrityError, PhiguardError

if TYPE_CHECKING:
    from phiguard.audit.log import AuditLog, Tip


@dataclass
class Finding:
    where: str
    message: str
    error: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Report:
    entries: int = 0
    actions: int = 0
    erased_entries: int = 0
    checkpoints: int = 0
    latest: Checkpoint | None = None
    cosigners: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    key_chain: list[str] = field(default_factory=list)  # keys handed over to, in order

    @property
    def ok(self) -> bool:
        return not any(f.error for f in self.findings)

    def fail(self, where: str, message: str) -> None:
        self.findings.append(Finding(where, message))

    def warn(self, where: str, message: str) -> None:
        self.findings.append(Finding(where, message, error=False))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "actions": self.actions,
            "erased_entries": self.erased_entries,
            "checkpoints": self.checkpoints,
            "latest": None
            if self.latest is None
            else {
                "origin": self.latest.origin,
                "size": self.latest.size,
                "root": self.latest.root.hex(),
            },
            "cosigners": self.cosigners,
            "problems": [str(f) for f in self.findings if f.error],
            "warnings": [str(f) for f in self.findings if not f.error],
        }


# -- a read-only view of the tip (used by AuditLog when no writer is open) ----------------


def read_tip(log: AuditLog) -> Tip:
    """The durable tip as files show it, without repairing anything."""
    from phiguard.audit.log import Tip

    state = log.root / "state.json"
    try:
        tip = Tip.from_state(state.read_bytes())
    except FileNotFoundError:
        tip = Tip(Frontier())
    except (ValueError, KeyError) as exc:
        raise IntegrityError("audit/state.json is damaged (run `phiguard audit verify`)") from exc
    batch: list[jn.Frame] = []
    for first, path in jn.segments(log.journal_dir):
        if tip.segment is not None and first < tip.segment:
            continue
        if first != tip.segment:
            if first != tip.size or batch:
                break
            tip.segment, tip.offset = first, 0
        try:
            for frame in jn.read_frames(path, tip.offset):
                batch.append(frame)
                if frame.flags & jn.LAST:
                    tip.frontier.append(
                        [f.hashes[i : i + 32] for f in batch for i in range(0, 32 * f.count, 32)]
                    )
                    tip.offset = frame.end
                    batch = []
        except jn.TornFrame:
            break
    try:
        for rec in jn.read_checkpoint_records(log.root / "checkpoints.log", tip.ckpt_offset):
            cp = Checkpoint.parse_body(SignedNote.parse(rec.note).text)
            tip.ckpt_count += 1
            tip.ckpt_start, tip.ckpt_offset, tip.ckpt_hash = rec.offset, rec.end, rec.digest
            tip.ckpt_size, tip.ckpt_root = cp.size, cp.root
    except (jn.TornFrame, PhiguardError):
        pass
    return tip


# -- full verification ---------------------------------------------------------------------


def verify_log(
    log: AuditLog, *, witnesses: tuple[str, ...] = (), workers: int | None = None
) -> Report:
    """Verify every byte of ``HOME/audit``; see the module docstring.

    ``workers``: forked processes that share the hashing and decryption (default: one per
    core for a log of 200,000 entries or more when this process runs no other thread, else
    none; see :func:`verify_work.default_workers`); the report does not depend on it.
    """
    report = Report()
    with log._flock():  # a consistent snapshot: no commit or checkpoint half done
        sizes = _snapshot(log)
    try:
        signer = NoteSigner.from_seed(log.origin, log.app.keyring.signing_seed)
        # the key chain starts at the key sealed in entry 0 (log.json, checked against it
        # below) and follows signed handovers; see AuditLog.rotate_signing_key
        verifier = NoteVerifier.parse(str(log.config.get("vkey")))
    except PhiguardError as exc:
        report.fail("audit/log.json", str(exc))
        return report
    boundaries: dict[int, tuple[int, int]] = {0: (-1, 0)}
    erased_seen: set[int] = set()
    erasures: set[int] = set()
    scan = _Scan([], {})
    try:
        scan = _scan_journal(log, sizes)
    except Exception as exc:
        report.fail("journal", f"unreadable: {exc}")
    entries = sum(f.count for _, _, frames, _ in scan.segments for f in frames)
    ctx = vw.Context(log.root / "tree" / "00.nodes", log.root / "tree", scan.keys)
    runner = vw.Runner(ctx, workers or vw.default_workers(entries))
    try:
        try:
            boundaries, erased_seen, erasures = _verify_journal(log, scan, report, runner)
        except Exception as exc:  # damage the format checks did not foresee is still damage
            report.fail("journal", f"unreadable: {exc}")
        n = report.entries
        for where, step in (
            ("tree", lambda: _verify_nodes(log, n, report, runner)),
            (
                "checkpoints.log",
                lambda: _verify_checkpoints(log, sizes, n, verifier, witnesses, report),
            ),
            ("audit/state.json", lambda: _verify_state(log, boundaries, report)),
            ("audit/keys", lambda: _verify_periods(log, erased_seen, erasures, report)),
        ):
            try:
                step()
            except Exception as exc:
                report.fail(where, f"unreadable: {exc}")
    finally:
        runner.close()
    if report.latest is not None and report.latest.size > n:
        # Damage the journal check could only call "maybe crash residue" is covered by a
        # signed checkpoint: it is tampering, and it is the finding a person should read first.
        journal = [f for f in report.findings if f.where.startswith("journal")]
        for f in journal:
            f.error = True
            f.message = (
                f.message.split("; if no checkpoint")[0]
                + f" — a signed checkpoint covers {report.latest.size:,} entries, so this is"
                " tampering, not a crash"
            )
        report.findings = journal + [f for f in report.findings if f not in journal]
    final_key = report.key_chain[-1] if report.key_chain else log.config.get("vkey")
    if final_key != signer.vkey:
        report.fail(
            "keys/keyring.json",
            "the home's signing key is not the last key of the log's key chain",
        )
    if report.latest is not None and n > report.latest.size:
        report.warn(
            "journal",
            f"entries {report.latest.size}–{n - 1} are not yet covered by a signed "
            "checkpoint (sealed by the next one; `phiguard audit checkpoint` seals now)",
        )
    return report


def _snapshot(log: AuditLog) -> dict[str, int]:
    out = {}
    for p in [*log.journal_dir.glob("*.seg"), log.root / "checkpoints.log"]:
        if p.exists():
            out[p.name] = p.stat().st_size
    return out


@dataclass
class _Scan:
    """Frame headers of each segment, up to the first unreadable one, and the period keys."""

    segments: list[tuple[int, Path, list[jn.Frame], jn.TornFrame | None]]
    keys: dict[int, Any]


def _scan_journal(log: AuditLog, sizes: dict[str, int]) -> _Scan:
    scan = _Scan([], {})
    for first, path in jn.segments(log.journal_dir):
        frames: list[jn.Frame] = []
        torn = None
        try:
            for frame in jn.scan_frames(path, 0, sizes.get(path.name)):
                frames.append(frame)
        except jn.TornFrame as exc:
            torn = exc
        scan.segments.append((first, path, frames, torn))
        for frame in frames:
            if frame.period not in scan.keys:
                try:
                    scan.keys[frame.period] = log.keys.get(frame.period)
                except CryptoError as exc:
                    scan.keys[frame.period] = exc
        if torn is not None:
            break  # the pass below stops at the first unreadable frame
    return scan


def _verify_journal(
    log: AuditLog, scan: _Scan, report: Report, runner: vw.Runner
) -> tuple[dict[int, tuple[int, int]], set[int], set[int]]:
    """Frames, decryption, leaf hashes, level-0 node file. Returns batch boundaries
    (size → (segment, offset)), the periods seen without a key, and logged erasures.

    The frames are checked by ``runner`` (possibly in other processes); their outcomes are
    applied here in journal order, as one sequential pass would."""
    boundaries: dict[int, tuple[int, int]] = {0: (-1, 0)}
    missing_keys: set[int] = set()
    erasures: set[int] = set()
    expected = 0
    in_batch = False
    nsegs = len(jn.segments(log.journal_dir))
    if not nsegs:
        report.fail("journal", "no journal segment: the log is empty or was deleted")
    tasks = vw.journal_tasks([f for _, _, frames, _ in scan.segments for f in frames])
    outcomes = (o for batch in runner.map(vw.check_frames, tasks) for o in batch)
    for k, (first, path, frames, torn_head) in enumerate(scan.segments):
        where = f"journal/{path.name}"
        if first != expected or in_batch:
            report.fail(where, f"segment should start at entry {expected}, name says {first}")
            break
        try:
            for frame in frames:
                outcome = next(outcomes)
                if outcome.torn is not None:
                    raise jn.TornFrame(frame.offset, outcome.torn)
                last = frame.first_index + frame.count - 1
                fwhere = f"{where} byte {frame.offset} (entries {frame.first_index}–{last})"
                if frame.first_index != expected:
                    report.fail(fwhere, f"frame is out of place: expected entry {expected}")
                    return boundaries, missing_keys, erasures
                _apply_outcome(log, frame, outcome, report, missing_keys, erasures)
                expected += frame.count
                in_batch = not frame.flags & jn.LAST
                if not in_batch:
                    boundaries[expected] = (first, frame.end)
            if torn_head is not None:
                raise torn_head
        except jn.TornFrame as torn:
            msg = f"entries from {expected} on are unreadable ({torn.reason})"
            if k == nsegs - 1:
                report.warn(
                    f"{where} byte {torn.offset}",
                    msg + "; if no checkpoint covers them "
                    "this is a crash residue that the writer removes on its next start",
                )
            else:
                report.fail(f"{where} byte {torn.offset}", msg)
            break
    if in_batch:
        report.warn(
            "journal",
            f"the last batch (from entry {max(boundaries)}) is incomplete: it was never "
            "acknowledged and is removed by the writer's next start",
        )
    report.entries = max(boundaries)
    return boundaries, missing_keys, erasures


def _apply_outcome(
    log: AuditLog,
    frame: jn.Frame,
    outcome: vw.FrameOutcome,
    report: Report,
    missing_keys: set[int],
    erasures: set[int],
) -> None:
    for where, message in outcome.fails:
        report.fail(where, message)
    if outcome.erased:
        missing_keys.add(frame.period)
        report.erased_entries += frame.count
    if not outcome.decrypted:
        return
    if frame.kind == jn.KIND_ACTION:
        report.actions += frame.count
        for i, data in enumerate(outcome.actions or []):
            entry = jn.Leaf.decode(data)
            if frame.first_index + i == 0:
                _verify_genesis(log, entry, report)
            elif b"audit:period:erased" in entry.data:
                try:
                    doc = json.loads(entry.data)
                    if doc.get("tag") == str(Tag.PERIOD_ERASED):
                        erasures.add(jn.parse_period(str(doc["detail"]["period"])))
                except (ValueError, KeyError, TypeError):
                    pass
    elif frame.first_index == 0:
        report.fail("entry 0", "the first entry must seal log.json")


def _verify_genesis(log: AuditLog, entry: jn.Leaf, report: Report) -> None:
    from phiguard.audit.log import GENESIS_SOURCE

    raw = (log.root / "log.json").read_bytes()
    if entry.source != GENESIS_SOURCE or entry.data != raw:
        report.fail("audit/log.json", "differs from the copy sealed as entry 0")


def _verify_nodes(log: AuditLog, n: int, report: Report, runner: vw.Runner) -> None:
    folder = log.root / "tree"
    levels = max(1, n.bit_length())
    for path in folder.glob("*.nodes"):
        try:
            level = int(path.stem)
        except ValueError:
            continue
        if level >= levels and path.stat().st_size:
            report.fail(f"tree/{path.name}", "a level the tree does not have")
    for level in range(levels):
        path = folder / f"{level:02d}.nodes"
        want = (n >> level) * 32
        have = path.stat().st_size if path.exists() else -1
        if have != want:
            report.fail(
                f"tree/{path.name}", f"holds {max(have, 0) // 32} nodes, the tree has {n >> level}"
            )
            return
    # every level re-hashed from the one below, in ranges that may run in parallel; the
    # finding is the lowest bad level's first bad node, as a bottom-up pass would report
    bad = [
        (level, node)
        for level, _, node in runner.map(vw.check_level, vw.level_tasks(n))
        if node is not None
    ]
    if bad:
        level, node = min(bad)
        report.fail(f"tree/{level:02d}.nodes node {node}", "does not hash its two children")


def _verify_checkpoints(
    log: AuditLog,
    sizes: dict[str, int],
    n: int,
    verifier: NoteVerifier,
    witnesses: tuple[str, ...],
    report: Report,
) -> None:
    path = log.root / "checkpoints.log"
    trusted = [NoteVerifier.parse(w) for w in witnesses]
    prev = b"\0" * 32
    last: Checkpoint | None = None
    k = 0
    try:
        for k, rec in enumerate(jn.read_checkpoint_records(path, 0, sizes.get(path.name)), start=1):
            where = f"checkpoint #{k} (byte {rec.offset})"
            if rec.prev != prev:
                report.fail(
                    where, "does not chain to the checkpoint before it (one was removed or moved)"
                )
            prev = rec.digest
            try:
                verified = open_checkpoint(rec.note, verifier, trusted)
            except PhiguardError as exc:
                report.fail(where, str(exc))
                continue
            cp = verified.checkpoint
            where = f"checkpoint #{k} (size {cp.size})"
            handover = [e for e in cp.extensions if e.startswith(NEXT_KEY)]
            if handover:
                try:
                    verifier = NoteVerifier.parse(handover[0][len(NEXT_KEY) :])
                    report.key_chain.append(handover[0][len(NEXT_KEY) :])
                except PhiguardError as exc:
                    report.fail(where, f"hands over to an unreadable key: {exc}")
            for name, ts in verified.cosigners:
                report.cosigners[name] = max(report.cosigners.get(name, 0), ts)
            if last is not None and (
                cp.size < last.size or (cp.size == last.size and cp.root != last.root)
            ):
                report.fail(
                    where, f"goes back from size {last.size}: checkpoints were reordered or forged"
                )
            if cp.size > n:
                report.fail(
                    where,
                    f"covers {cp.size} entries but the journal holds {n}: entries were removed",
                )
            else:
                try:
                    root = Frontier.load(log.nodes, cp.size).root()
                except (IndexError, OSError):
                    root = b""
                if root != cp.root:
                    report.fail(where, "its root does not match the entries: the log was altered")
            last = cp
    except jn.TornFrame as torn:
        report.fail(f"checkpoints.log byte {torn.offset}", torn.reason)
    report.checkpoints = k
    report.latest = last
    if last is None:
        report.fail("checkpoints.log", "no signed checkpoint")
    else:
        for w in trusted:
            if w.name not in report.cosigners:
                report.warn(f"witness {w.name}", "has cosigned no checkpoint")


def _verify_state(log: AuditLog, boundaries: dict[int, tuple[int, int]], report: Report) -> None:
    from phiguard.audit.log import Tip

    path = log.root / "state.json"
    try:
        raw = path.read_bytes()
        tip = Tip.from_state(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.fail("audit/state.json", f"missing or unreadable ({exc.__class__.__name__})")
        return
    if tip.state_bytes() != raw:
        report.fail("audit/state.json", "is not in its canonical form: it was edited")
        return
    latest = report.latest
    records = list(jn.read_checkpoint_records(log.root / "checkpoints.log")) if latest else []
    if latest is None or not records:
        return
    last = records[-1]
    if (
        (tip.ckpt_count, tip.ckpt_offset, tip.ckpt_start, tip.ckpt_hash)
        != (len(records), last.end, last.offset, last.digest)
        or (tip.ckpt_size, tip.ckpt_root) != (latest.size, latest.root)
        or tip.size != latest.size
    ):
        report.fail(
            "audit/state.json",
            "does not describe the last checkpoint (a checkpoint was removed, "
            "or the writer stopped between two steps: `phiguard audit checkpoint` repairs that)",
        )
        return
    seg, offset = boundaries.get(tip.size, (None, None))
    if tip.size and (tip.segment, tip.offset) != (seg, offset):
        report.fail("audit/state.json", "points into the journal where no batch ends")
    try:
        if tip.frontier.pending != Frontier.load(log.nodes, tip.size).pending:
            report.fail("audit/state.json", "its tree frontier differs from the tree")
    except (IndexError, OSError):
        report.fail("audit/state.json", "its tree frontier cannot be checked: the tree is short")


def _verify_periods(log: AuditLog, missing: set[int], erasures: set[int], report: Report) -> None:
    known = log.keys.periods()
    for period in sorted(missing):
        label = jn.period_label(period)
        if known.get(period) != "erased":
            report.fail(
                f"audit/keys/{label}.key", "is missing: entries of this period cannot be checked"
            )
        elif period not in erasures:
            report.fail(f"audit/keys/{label}.erased", "no logged erasure action authorises it")
    for period, state in known.items():
        label = jn.period_label(period)
        if state == "erased" and period not in erasures:
            report.fail(f"audit/keys/{label}.erased", "no logged erasure action authorises it")
        marker = log.keys.erased_path(period)
        if marker.exists() and marker.read_bytes() != label.encode() + b"\n":
            report.fail(f"audit/keys/{label}.erased", "the erasure marker was altered")


def verify_files_exist(root: Path) -> None:
    if not (root / "log.json").exists():
        raise IntegrityError(f"{root} holds no audit log (log.json is missing)")
