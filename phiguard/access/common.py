"""What every access service shares: vocabulary, parsing of scopes, time helpers, the
version counter, history rows and account checks.

Every mutating service follows one pattern: validate everything first (raising a
:mod:`phiguard.errors` exception before anything is written), then write inside one
``app.session()`` unit of work, bump :class:`AccessState` in the same transaction, and write
the audit record last inside that transaction, so a failing audit write rolls the change
back and nothing is half-done.
"""

from __future__ import annotations

import re
import secrets
import weakref
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from phiguard.access.models import AccessState, GrantEvent
from phiguard.access.settings import AccessSettings
from phiguard.clock import HKT
from phiguard.errors import InputError, NotFound, PermissionDenied, UsageError
from phiguard.storage.models import Account

if TYPE_CHECKING:
    from phiguard.app import App

CLUSTERS = ("HKEC", "HKWC", "KCC", "KEC", "KWC", "NTEC", "NTWC")
ACTIONS = ("read", "search", "print", "export", "update")
#: Fields a record may carry; used to name what a proxy must mask when the caller did not
#: list the fields it will return. Unknown field names are accepted (and then never masked
#: implicitly, only checked when asked for).
KNOWN_FIELDS = (
    "address",
    "diagnosis",
    "dob",
    "hkid",
    "hospital_no",
    "medication",
    "name",
    "name_zh",
    "phone",
    "procedure",
    "sex",
)
ALL_FIELDS = "*"
STAFF = "HA"
_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
FAR_FUTURE = 253402214400  # 9999-12-31, as epoch seconds


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


# -- parsing --------------------------------------------------------------------------------
def parse_actions(text: str | Iterable[str]) -> tuple[str, ...]:
    items = _split(text)
    if not items:
        raise UsageError("at least one action is needed (read, search, print, export, update)")
    bad = [a for a in items if a not in ACTIONS]
    if bad:
        raise UsageError(f"unknown action {bad[0]!r}; use {', '.join(ACTIONS)}")
    return tuple(sorted(set(items), key=ACTIONS.index))


def parse_action(text: str) -> str:
    action = text.strip().lower()
    if action not in ACTIONS:
        raise UsageError(f"unknown action {text!r}; use {', '.join(ACTIONS)}")
    return action


def parse_fields(text: str | Iterable[str] | None, *, allow_all: bool = True) -> tuple[str, ...]:
    items = _split(text or "")
    if allow_all and items == [ALL_FIELDS]:
        return (ALL_FIELDS,)
    bad = [f for f in items if not _FIELD.match(f)]
    if bad:
        raise UsageError(f"field {bad[0]!r} is not a field name (lower-case letters, digits, _)")
    return tuple(sorted(set(items)))


def parse_cluster(text: str | None, *, allow_all: bool = True, required: bool = True) -> str:
    value = (text or "").strip().upper()
    if not value and not required:
        return ""
    if value in CLUSTERS or (allow_all and value == "ALL"):
        return value
    raise UsageError(
        f"cluster {text!r} is not one of {', '.join(CLUSTERS)}" + (" or ALL" if allow_all else "")
    )


def parse_purpose(text: str | None, settings: AccessSettings, *, required: bool = True) -> str:
    value = (text or "").strip().upper()
    if not value and not required:
        return ""
    if value not in settings.purposes:
        raise UsageError(f"purpose {text!r} is not one of {', '.join(settings.purposes)}")
    return value


def parse_duration(text: str) -> timedelta:
    """``90m``, ``8h``, ``2d`` or a bare number of minutes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd]?)\s*", text or "")
    if not m:
        raise UsageError(f"duration {text!r} is not like 90m, 8h or 2d")
    value = float(m.group(1))
    unit = m.group(2) or "m"
    delta = timedelta(minutes=value) * {"m": 1, "h": 60, "d": 1440}[unit]
    if delta <= timedelta(0):
        raise UsageError("duration must be longer than zero")
    return delta


def check_id(value: str, what: str) -> str:
    v = (value or "").strip()
    if not _ID.match(v):
        raise UsageError(f"{what} {value!r} is not a valid identifier")
    return v


def require_text(value: str | None, what: str, *, min_len: int = 1) -> str:
    v = (value or "").strip()
    if len(v) < min_len:
        more = f" (at least {min_len} characters)" if min_len > 1 else ""
        raise UsageError(f"{what} is required{more}")
    return v


def _split(text: str | Iterable[str]) -> list[str]:
    parts = text.split(",") if isinstance(text, str) else list(text)
    return [p.strip().lower() for p in parts if p.strip()]


# -- time -----------------------------------------------------------------------------------
def aware(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise InputError("timestamp without a time zone")
    return ts.astimezone(UTC)


def day_start(d: date) -> datetime:
    """Midnight Hong Kong time at the start of ``d`` (dates in phiguard are HKT days)."""
    return datetime.combine(d, time(0), tzinfo=HKT).astimezone(UTC)


def day_end(d: date) -> datetime:
    """The first instant after day ``d``: a date ``end`` is inclusive of the whole day."""
    return day_start(d + timedelta(days=1))


def hk_date(ts: datetime) -> date:
    return ts.astimezone(HKT).date()


def epoch(ts: datetime) -> int:
    return int(ts.timestamp())


def iso(ts: datetime | None) -> str | None:
    return ts.astimezone(HKT).isoformat(timespec="seconds") if ts else None


# -- shared writes --------------------------------------------------------------------------
#: Per-engine count of committed access changes made by this process: the decision point
#: compares it on every decision, so a change made here is seen at once; changes made by
#: other processes are seen through ``access_state.version`` (checked periodically).
_LOCAL: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


def bump(session: Session) -> None:
    """Tell every decision point (in this or another process) that access rights changed."""
    session.execute(
        update(AccessState).where(AccessState.id == 1).values(version=AccessState.version + 1)
    )
    if not session.info.get("access_bumped"):
        session.info["access_bumped"] = True
        engine = session.get_bind().engine

        def _committed(_sess: Session) -> None:
            _LOCAL[engine] = _LOCAL.get(engine, 0) + 1

        event.listen(session, "after_commit", _committed, once=True)


def local_generation(engine: Engine) -> int:
    return _LOCAL.get(engine, 0)


def history(
    session: Session,
    *,
    kind: str,
    account_id: str,
    actor: str,
    ts: datetime,
    grant_id: str | None = None,
    request_id: str | None = None,
    **detail: Any,
) -> None:
    session.add(
        GrantEvent(
            grant_id=grant_id,
            request_id=request_id,
            account_id=account_id,
            ts=ts,
            kind=kind,
            actor=actor,
            detail=detail,
        )
    )


def get_account(session: Session, account_id: str) -> Account:
    account = session.get(Account, (account_id or "").strip())
    if account is None:
        raise NotFound(f"unknown account {account_id!r}")
    return account


def check_approver(session: Session, approver_id: str, *, now: datetime) -> Account:
    """An approver is a known, active, in-date hospital (HA) account.

    Approver ids come from the caller (the CLI's ``--as`` or the console's session); an id
    that is not such an account is refused rather than trusted, so a forged or mistyped id
    can never count as an approval.
    """
    account = session.get(Account, approver_id or "")  # exact: no trimming of ids
    if account is None:
        raise PermissionDenied(f"approver {approver_id!r} is not a known account")
    if account.employer != STAFF:
        raise PermissionDenied(
            f"approver {approver_id!r} is a contractor account; "
            "only hospital staff can approve or review access"
        )
    if account.status != "active" or not account_in_date(account, now):
        raise PermissionDenied(f"approver {approver_id!r} is not an active account")
    return account


def account_in_date(account: Account, now: datetime) -> bool:
    if account.active_from and now < day_start(account.active_from):
        return False
    return not (account.active_to and now >= day_end(account.active_to))


def record(app: App, tag: str, *, actor: str, subject: str = "", **detail: Any) -> None:
    app.record(tag, actor=actor, subject=subject, **detail)


def settings_of(app: App) -> AccessSettings:
    """The access settings of this app (built once per app, from the environment)."""
    cached = app.__dict__.get("_access_settings")
    if cached is None:
        cached = AccessSettings.model_validate({})
        app.__dict__["_access_settings"] = cached
    return cached
