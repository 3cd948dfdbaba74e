"""Short-lived gateway credentials and the gateway terms of a grant.

``issue`` makes a random secret for one live grant and keeps only its SCRAM-SHA-256 verifier
(salt, iterations, StoredKey, ServerKey — RFC 5802/7677, as PostgreSQL stores passwords): the
secret is printed once and cannot be recovered from the database. The database user name is
the grant id, so a connection string names the grant it works under. The credential expires
with the grant's window and is refused at once when the grant is revoked or used up, the
account disabled or the vendor suspended; issuing a new one for the same grant revokes the
previous one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from sqlalchemy import select, update

from phiguard.access import common as c
from phiguard.access.grants import effective_status
from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, UsageError
from phiguard.gateway.models import GatewayCredential, GatewayTerms
from phiguard.storage.models import Account, Grant, Vendor

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult
    from sqlalchemy.orm import Session

    from phiguard.app import App

ITERATIONS = 4096


@dataclass(frozen=True)
class Issued:
    credential_id: str
    grant_id: str
    account_id: str
    secret: str
    expires_at: datetime

    def url(self, host: str, port: int, database: str, *, tls: bool = False) -> str:
        mode = "require" if tls else "disable"
        return (
            f"postgresql://{quote(self.grant_id, safe='')}:{quote(self.secret, safe='')}"
            f"@{host}:{port}/{quote(database, safe='')}?sslmode={mode}"
        )


def scram_keys(secret: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return stored_key, server_key


def issue(app: App, grant_id: str, *, actor: str, iterations: int = ITERATIONS) -> Issued:
    now = app.clock.now()
    with app.session() as s:
        grant = s.get(Grant, (grant_id or "").strip())
        if grant is None:
            raise NotFound(f"unknown grant {grant_id!r}")
        status = effective_status(grant, now)
        if status != "active":
            raise Conflict(
                f"grant {grant.grant_id} is {status}; a credential is issued only for a live grant"
            )
        problem = standing_problem(s, grant, now)
        if problem:
            raise Conflict(problem)
        replaced = _revoke_live(s, grant.grant_id, now)
        secret = secrets.token_urlsafe(24)
        salt = secrets.token_bytes(16)
        stored, server = scram_keys(secret, salt, iterations)
        cred = GatewayCredential(
            credential_id=c.new_id("GC"),
            grant_id=grant.grant_id,
            account_id=grant.account_id,
            created_at=now,
            expires_at=grant.valid_to,
            created_by=actor,
            salt=salt,
            iterations=iterations,
            stored_key=stored,
            server_key=server,
        )
        s.add(cred)
        app.record(
            Tag.GATEWAY_CREDENTIAL_ISSUED,
            actor=actor,
            subject=grant.account_id,
            grant_id=grant.grant_id,
            credential_id=cred.credential_id,
            expires_at=c.iso(grant.valid_to),
            replaced=replaced,
        )
        return Issued(cred.credential_id, grant.grant_id, grant.account_id, secret, grant.valid_to)


def revoke_credentials(app: App, grant_id: str, *, actor: str) -> int:
    now = app.clock.now()
    with app.session() as s:
        n = _revoke_live(s, grant_id, now)
        if n:
            app.record(Tag.GATEWAY_CREDENTIAL_REVOKED, actor=actor, subject=grant_id, count=n)
        return n


def _revoke_live(s: Session, grant_id: str, now: datetime) -> int:
    """Revoke the grant's credentials not yet revoked; returns how many there were."""
    # A bulk UPDATE through a Session returns a CursorResult; Session.execute is typed
    # with the plain Result, which has no rowcount.
    result = cast(
        "CursorResult[Any]",
        s.execute(
            update(GatewayCredential)
            .where(GatewayCredential.grant_id == grant_id, GatewayCredential.revoked_at.is_(None))
            .values(revoked_at=now)
        ),
    )
    return int(result.rowcount or 0)


def standing_problem(s: Any, grant: Grant, now: datetime) -> str | None:
    """Why a grant's holder may not use the gateway now (None: they may). The widest cause
    is named first: a suspension also revokes the grant, and "vendor V1 is suspended" is
    what the contractor and the investigator need to read."""
    account = s.get(Account, grant.account_id)
    if account is not None and account.employer != c.STAFF:
        vendor = s.get(Vendor, account.employer)
        if vendor is None or vendor.status != "active":
            state = vendor.status if vendor else "unknown"
            return f"vendor {account.employer} is {state}"
    if account is None or account.status != "active":
        return f"account {grant.account_id} is {account.status if account else 'unknown'}"
    status = effective_status(grant, now)
    if status != "active":
        return f"grant {grant.grant_id} is {status}"
    return None


def live_credential(app: App, grant_id: str) -> GatewayCredential | None:
    now = app.clock.now()
    with app.session() as s:
        q = (
            select(GatewayCredential)
            .where(
                GatewayCredential.grant_id == grant_id,
                GatewayCredential.revoked_at.is_(None),
                GatewayCredential.expires_at > now,
            )
            .order_by(GatewayCredential.created_at.desc())
            .limit(1)
        )
        return s.scalars(q).first()


# -- terms --------------------------------------------------------------------------------
OVER_LIMIT = ("cut", "refuse")


def set_terms(
    app: App,
    grant_id: str,
    *,
    actor: str,
    allow: list[str] | None = None,
    over_limit: str | None = None,
) -> dict[str, Any]:
    """Name exceptions for one grant (``ddl``, ``function:NAME``) and choose whether a result
    over the row limit is cut (default) or refused. Only hospital staff may do this."""
    items = sorted({a.strip().lower() for a in (allow or []) if a.strip()})
    for a in items:
        if a != "ddl" and not (a.startswith("function:") and len(a) > 9):
            raise UsageError(f"--allow {a!r}: use ddl or function:NAME")
    if over_limit is not None and over_limit not in OVER_LIMIT:
        raise UsageError("--over-limit must be cut or refuse")
    now = app.clock.now()
    with app.session() as s:
        c.check_approver(s, actor, now=now)
        if s.get(Grant, grant_id) is None:
            raise NotFound(f"unknown grant {grant_id!r}")
        terms = s.get(GatewayTerms, grant_id)
        if terms is None:
            terms = GatewayTerms(
                grant_id=grant_id, allow=[], over_limit="cut", updated_at=now, updated_by=actor
            )
            s.add(terms)
        if allow is not None:
            terms.allow = items
        if over_limit is not None:
            terms.over_limit = over_limit
        terms.updated_at, terms.updated_by = now, actor
        c.bump(s)
        app.record(
            Tag.GATEWAY_TERMS_SET,
            actor=actor,
            subject=grant_id,
            allow=terms.allow,
            over_limit=terms.over_limit,
        )
        return {"grant_id": grant_id, "allow": list(terms.allow), "over_limit": terms.over_limit}


def terms_of(s: Any, grant_id: str) -> tuple[frozenset[str], str]:
    t = s.get(GatewayTerms, grant_id)
    if t is None:
        return frozenset(), "cut"
    return frozenset(t.allow or []), t.over_limit
