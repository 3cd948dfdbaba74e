"""The approval rules, as pure functions so they can be property-tested on their own.

* Nobody approves their own request: neither the account the grant is for nor the person
  who filed the request may approve it.
* A request needs two distinct approvers when it includes ``export``, the ``hkid`` field
  (``*`` includes it), the ``ALL`` cluster scope, or more rows than
  ``PHIGUARD_ACCESS_TWO_PERSON_ROWS``; otherwise one.
* The window starts at the final approval and never exceeds the maximum duration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from phiguard.access.common import ALL_FIELDS
from phiguard.access.settings import AccessSettings


@dataclass(frozen=True)
class ApprovalRule:
    required: int
    why: tuple[str, ...]


def required_approvals(
    *,
    actions: Iterable[str],
    fields: Iterable[str],
    cluster: str,
    max_rows: int,
    settings: AccessSettings,
) -> ApprovalRule:
    why: list[str] = []
    actions = set(actions)
    fields = set(fields)
    if "export" in actions:
        why.append("it includes export")
    if "hkid" in fields or ALL_FIELDS in fields:
        why.append("it includes the HKID field")
    if cluster == "ALL":
        why.append("it covers ALL clusters")
    if max_rows > settings.two_person_rows:
        why.append(f"it allows more than {settings.two_person_rows:,} rows")
    return ApprovalRule(2 if why else 1, tuple(why))


def self_approval(approver: str, *, account_id: str, requested_by: str) -> bool:
    return approver in {account_id, requested_by}
