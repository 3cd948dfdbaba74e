"""The rule pack: every rule phiguard evaluates, as data (a SQL template and an assessor).

Adding a rule means adding a :class:`~phiguard.detection.rules.base.Rule` to one of the
family modules' ``RULES``; the pack, the engines, the CLI and the DuckDB/Spark equality test
pick it up from :data:`PACK`.
"""

from __future__ import annotations

from phiguard.detection.rules import grant, integrity, relations, timeplace, volume
from phiguard.detection.rules.base import RANK, SEVERITIES, Context, Hit, Rule

PACK: tuple[Rule, ...] = (
    *grant.RULES,
    *volume.RULES,
    *timeplace.RULES,
    *relations.RULES,
    *integrity.RULES,
)

# Every rule name an alert can carry, with its family (for docs, settings and suppression).
RULE_NAMES: dict[str, str] = {name: r.family for r in PACK for name in r.names()}
RULE_NAMES["anomaly"] = "score"

__all__ = ["PACK", "RANK", "RULE_NAMES", "SEVERITIES", "Context", "Hit", "Rule"]
