"""Injectable time. Every expiry, deadline and window in phiguard reads a ``Clock``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

HKT = ZoneInfo("Asia/Hong_Kong")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock for tests and replays: stands still until moved."""

    at: datetime

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at = self.at + delta


def parse_ts(text: str) -> datetime:
    """ISO-8601 with an offset; a missing offset is read as Hong Kong time (spec §0)."""
    ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=HKT)
