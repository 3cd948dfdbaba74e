"""Retention by crypto-erasure: destroying a period's key ends that period's entries.

PDPO data protection principle 2(2) requires that personal data not be kept longer than
necessary. The log cannot delete entries (that would break every proof after them), so each
month's entries are encrypted under that month's own key and erasure destroys the key. What
stays — the leaf hashes, the tree, the signed checkpoints — still verifies, and reveals
nothing: every leaf hash commits to a random salt that was encrypted with its entry.

The erasure itself is logged (``audit:period:erased``) *before* the key is destroyed, so
``phiguard audit verify`` can tell an authorised erasure from a deleted key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from phiguard.audit import journal as jn
from phiguard.audit.tags import Tag
from phiguard.clock import HKT
from phiguard.errors import Conflict, NotFound, UsageError

if TYPE_CHECKING:
    from phiguard.app import App


@dataclass(frozen=True)
class Erasure:
    period: str
    entries: int
    recorded_at_index: int


def erasable_periods(app: App) -> dict[str, int]:
    """Periods that hold entries and still have a key, with their entry counts."""
    counts: dict[int, int] = {}
    for _, path in jn.segments(app.audit.journal_dir):
        for frame in jn.read_frames(path):
            counts[frame.period] = counts.get(frame.period, 0) + frame.count
    known = app.audit.keys.periods()
    return {
        jn.period_label(p): n
        for p, n in sorted(counts.items())
        if known.get(p) == "key" and p != jn.PERMANENT
    }


def erase_period(app: App, label: str, *, actor: str, keep_months: int = 0) -> Erasure:
    """Crypto-erase the month ``label`` (YYYY-MM, Hong Kong time).

    Refuses the current month and later ones (entries may still arrive), and any month
    younger than ``keep_months`` full months. Idempotence is refused too: erasing an
    erased period is a :class:`Conflict`.
    """
    try:
        period = jn.parse_period(label)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    now = app.clock.now().astimezone(HKT)
    current = now.year * 100 + now.month
    months_old = (current // 100 - period // 100) * 12 + (current % 100 - period % 100)
    if months_old <= 0:
        raise Conflict(f"period {label} has not ended; only past months can be erased")
    if months_old <= keep_months:
        raise Conflict(f"period {label} is within the {keep_months}-month retention period")
    keys = app.audit.keys
    if keys.is_erased(period):
        raise Conflict(f"period {label} was already erased")
    entries = erasable_periods(app).get(label)
    if entries is None:
        raise NotFound(f"the log holds no entries of period {label}")
    receipt = app.audit.record_action(
        str(Tag.PERIOD_ERASED),
        actor=actor,
        subject=f"period:{label}",
        detail={"period": label, "entries": entries},
    )
    app.audit.publish()
    keys.erase(period)
    return Erasure(label, entries, receipt.first_index)
