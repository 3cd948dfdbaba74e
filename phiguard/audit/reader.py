"""Reading the audit log: its tip, entries, proofs and checkpoints (mixed into AuditLog).

Also the small value types the log hands out (:class:`BatchReceipt`, :class:`Entry`) and
:class:`Tip`, the log's last consistent state that ``state.json`` records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from phiguard.audit import journal as jn
from phiguard.audit.merkle import Frontier, consistency_proof, inclusion_proof
from phiguard.errors import IntegrityError

if TYPE_CHECKING:
    import threading

    from phiguard.audit.keys import PeriodKeys


@dataclass(frozen=True)
class BatchReceipt:
    """Where a durable batch landed: entries ``first_index … first_index+count-1`` of a tree
    of ``tree_size`` leaves whose root is ``root`` (not yet signed; see
    :meth:`latest_checkpoint`)."""

    first_index: int
    count: int
    tree_size: int
    root: bytes


@dataclass(frozen=True)
class Entry:
    """A decrypted log entry with what its leaf hash commits to."""

    index: int
    kind: str
    source: str
    ts: datetime
    data: bytes
    leaf: bytes  # the full leaf data (salt included): evidence bundles carry it


@dataclass
class Tip:
    """The log's last consistent state, in memory and (at each checkpoint) in state.json."""

    frontier: Frontier
    segment: int | None = None
    offset: int = 0
    ckpt_count: int = 0
    ckpt_offset: int = 0
    ckpt_size: int = 0
    ckpt_root: bytes = b""
    ckpt_hash: bytes = b"\0" * 32
    ckpt_start: int = 0  # byte offset of the last checkpoint record

    @property
    def size(self) -> int:
        return self.frontier.size

    def state_bytes(self) -> bytes:
        doc = {
            "format": 1,
            "size": self.size,
            "frontier": self.frontier.to_list(),
            "segment": self.segment,
            "offset": self.offset,
            "checkpoints": {
                "count": self.ckpt_count,
                "offset": self.ckpt_offset,
                "size": self.ckpt_size,
                "root": self.ckpt_root.hex(),
                "last": self.ckpt_hash.hex(),
                "start": self.ckpt_start,
            },
        }
        return (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode()

    @classmethod
    def from_state(cls, raw: bytes) -> Tip:
        doc = json.loads(raw)
        c = doc["checkpoints"]
        return cls(
            Frontier.from_list(int(doc["size"]), doc["frontier"]),
            doc["segment"],
            int(doc["offset"]),
            int(c["count"]),
            int(c["offset"]),
            int(c["size"]),
            bytes.fromhex(c["root"]),
            bytes.fromhex(c["last"]),
            int(c["start"]),
        )


class LogReader:
    """Read-side methods of :class:`~phiguard.audit.log.AuditLog`; need no writer."""

    if TYPE_CHECKING:
        root: Path

        @property
        def journal_dir(self) -> Path: ...

        @property
        def keys(self) -> PeriodKeys: ...

        @property
        def nodes(self) -> jn.NodeFiles: ...

    _tip: Tip | None
    _commit: threading.RLock

    # -- reading ----------------------------------------------------------------------
    def view(self) -> Tip:
        """The current tip: the writer's when open here, else read from disk (read-only)."""
        if self._tip is not None:
            with self._commit:
                return Tip(
                    self._tip.frontier.copy(),
                    self._tip.segment,
                    self._tip.offset,
                    self._tip.ckpt_count,
                    self._tip.ckpt_offset,
                    self._tip.ckpt_size,
                    self._tip.ckpt_root,
                    self._tip.ckpt_hash,
                    self._tip.ckpt_start,
                )
        from phiguard.audit.verify import read_tip

        return read_tip(self)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return self.view().size

    def root_at(self, size: int) -> bytes:
        return Frontier.load(self.nodes, size).root()

    def leaf_hash(self, index: int) -> bytes:
        return self.nodes.node(0, index)

    @cached_property
    def proof_nodes(self) -> jn.TopNodes:
        """The node reader of proofs (upper tree levels in memory; see :class:`TopNodes`)."""
        return jn.TopNodes(self.nodes)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        size = self.view().size if tree_size is None else tree_size
        nodes = self.proof_nodes
        nodes.extend(size)
        return inclusion_proof(nodes, index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        nodes = self.proof_nodes
        nodes.extend(new)
        return consistency_proof(nodes, old, new)

    def checkpoints(self) -> Iterator[bytes]:
        """Every stored signed checkpoint, oldest first."""
        for rec in jn.read_checkpoint_records(self.root / "checkpoints.log"):
            yield rec.note

    def latest_checkpoint(self) -> bytes | None:
        """The newest signed checkpoint note, or None before the first one."""
        tip = self.view()
        if not tip.ckpt_count:
            return None
        for rec in jn.read_checkpoint_records(self.root / "checkpoints.log", tip.ckpt_start):
            return rec.note
        return None

    def records(
        self, start: int = 0, stop: int | None = None, *, skip_erased: bool = True
    ) -> Iterator[Entry]:
        """Decrypted entries ``start ≤ index < stop`` with their metadata, in order."""
        end = self.view().size if stop is None else stop
        segs = jn.segments(self.journal_dir)
        chosen = [s for s in segs if s[0] <= start][-1:] + [s for s in segs if s[0] > start]
        for _, path in chosen:
            try:
                frames = list(jn.read_frames(path))
            except jn.TornFrame as exc:
                raise IntegrityError(
                    f"journal/{path.name}: {exc} (run `phiguard audit verify`)"
                ) from exc
            for frame in frames:
                if frame.first_index >= end:
                    return
                if frame.first_index + frame.count <= start:
                    continue
                aead = self.keys.get(frame.period)
                if aead is None:
                    if skip_erased:
                        continue
                    raise IntegrityError(
                        f"entries from {frame.first_index} were erased with their period"
                    )
                for i, leaf in enumerate(frame.decrypt(aead)):
                    index = frame.first_index + i
                    if start <= index < end:
                        parsed = jn.Leaf.decode(leaf[1:])
                        yield Entry(
                            index,
                            jn.KIND_NAMES[parsed.kind],
                            parsed.source,
                            datetime.fromtimestamp(parsed.ts_ms / 1000, UTC),
                            parsed.data,
                            bytes(leaf[1:]),
                        )

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(index, exact bytes)`` of each entry in ``[start, stop)``; erased ones are skipped."""
        for e in self.records(start, stop):
            yield e.index, e.data

    def find(
        self, match: str | Callable[[Entry], bool], *, kind: str | None = "event"
    ) -> Iterator[Entry]:
        """Entries whose bytes contain the string ``match`` (e.g. an event id), or for which
        the predicate is true. A full scan: callers with an index (the event store keeps
        ``leaf_index``) should use :meth:`records` directly."""
        if isinstance(match, str):
            needle = match.encode()
            pred: Callable[[Entry], bool] = lambda e: needle in e.data  # noqa: E731
        else:
            pred = match
        for e in self.records():
            if (kind is None or e.kind == kind) and pred(e):
                yield e
