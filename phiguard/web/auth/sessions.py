"""Server-side sessions (ASVS 7): the cookie holds a 256-bit random id; the table holds its
SHA-256, so a copy of the database does not let anyone ride a live session.

Three clocks end a session: idle (no request for ``idle_timeout_minutes``), absolute
(``absolute_timeout_hours`` after login, however busy), and for the half-logged-in MFA stage
``mfa_pending_minutes``. Completing MFA issues a new id (no session fixation). Every check
reads ``app.clock``, so tests move time instead of sleeping.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import NotFound
from phiguard.web.config import WebSettings
from phiguard.web.models import ConsoleSession, ConsoleUser

_TOUCH_EVERY = timedelta(seconds=15)  # write last_seen at most this often per session
_S = ConsoleSession.__table__.c
_U = ConsoleUser.__table__.c
_LOAD = (
    select(
        _S.session_hash,
        _S.public_id,
        _S.kind,
        _S.stage,
        _S.user_id,
        _S.patient_id,
        _S.csrf_token,
        _S.created_at,
        _S.last_seen,
        _S.expires_at,
        _S.reauth_at,
        _S.client_ip,
        _S.user_agent,
        _S.revoked_at,
        _U.username,
        _U.role,
        _U.status.label("user_status"),
    )
    .select_from(
        ConsoleSession.__table__.outerjoin(ConsoleUser.__table__, _U.user_id == _S.user_id)
    )
    .where(_S.session_hash == bindparam("h"))
)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    session_hash: str
    public_id: str
    kind: str
    stage: str
    user_id: int | None
    username: str
    role: str
    patient_id: str | None
    csrf_token: str
    created_at: datetime
    last_seen: datetime
    expires_at: datetime
    reauth_at: datetime | None
    client_ip: str
    user_agent: str


class Sessions:
    def __init__(self, app: App, web: WebSettings | None = None) -> None:
        self.app = app
        self.web = web or WebSettings()

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.web.idle_timeout_minutes)

    def _info(self, row: ConsoleSession, user: ConsoleUser | None) -> SessionInfo:
        return SessionInfo(
            row.session_hash,
            row.public_id,
            row.kind,
            row.stage,
            row.user_id,
            user.username if user else "",
            user.role if user else "",
            row.patient_id,
            row.csrf_token,
            row.created_at,
            row.last_seen,
            row.expires_at,
            row.reauth_at,
            row.client_ip,
            row.user_agent,
        )

    def _new_row(
        self,
        *,
        kind: str,
        stage: str,
        lifetime: timedelta,
        client_ip: str,
        user_agent: str,
        user_id: int | None = None,
        patient_id: str | None = None,
    ) -> tuple[str, ConsoleSession]:
        token = secrets.token_urlsafe(32)
        now = self.app.clock.now()
        row = ConsoleSession(
            session_hash=digest(token),
            public_id=secrets.token_hex(6),
            kind=kind,
            user_id=user_id,
            patient_id=patient_id,
            stage=stage,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen=now,
            expires_at=now + lifetime,
            reauth_at=now if stage == "full" else None,
            client_ip=client_ip[:64],
            user_agent=user_agent[:200],
        )
        return token, row

    def start(self, user_id: int, *, mfa_pending: bool, client_ip: str, user_agent: str) -> str:
        """A new staff session: stage ``mfa`` until the second factor, else ``full``."""
        lifetime = (
            timedelta(minutes=self.web.mfa_pending_minutes)
            if mfa_pending
            else timedelta(hours=self.web.absolute_timeout_hours)
        )
        token, row = self._new_row(
            kind="staff",
            stage="mfa" if mfa_pending else "full",
            lifetime=lifetime,
            client_ip=client_ip,
            user_agent=user_agent,
            user_id=user_id,
        )
        with self.app.session() as s:
            s.add(row)
        return token

    def start_patient(self, patient_id: str, *, client_ip: str, user_agent: str) -> str:
        token, row = self._new_row(
            kind="patient",
            stage="full",
            lifetime=timedelta(minutes=self.web.portal_session_minutes),
            client_ip=client_ip,
            user_agent=user_agent,
            patient_id=patient_id,
        )
        with self.app.session() as s:
            s.add(row)
        return token

    def load(self, token: str | None) -> SessionInfo | None:
        """The live session for a cookie value, or None (expired sessions are ended here).

        Every request passes here, so the read is one Core query (session joined to its
        user) rather than two ORM loads; the rare writes (ending an expired session,
        moving ``last_seen`` at most every 15 s) take their own short transaction."""
        if not token or len(token) > 100:
            return None
        now = self.app.clock.now()
        key = digest(token)
        with self.app.engine.connect() as conn:
            row = conn.execute(_LOAD, {"h": key}).first()
        if row is None or row.revoked_at is not None:
            return None
        expired = now >= row.expires_at
        if row.kind == "staff":
            expired = expired or now - row.last_seen >= self.idle
            expired = expired or row.username is None or row.user_status != "active"
        if expired:
            self._set(key, revoked_at=now)
            return None
        last_seen = row.last_seen
        if now - last_seen >= _TOUCH_EVERY:
            self._set(key, last_seen=now)
            last_seen = now
        return SessionInfo(
            row.session_hash,
            row.public_id,
            row.kind,
            row.stage,
            row.user_id,
            row.username or "",
            row.role or "",
            row.patient_id,
            row.csrf_token,
            row.created_at,
            last_seen,
            row.expires_at,
            row.reauth_at,
            row.client_ip,
            row.user_agent,
        )

    def _set(self, session_hash: str, **values: object) -> None:
        with self.app.session() as s:
            s.execute(
                update(ConsoleSession)
                .where(ConsoleSession.session_hash == session_hash)
                .values(**values)
            )

    def complete_mfa(self, token: str) -> str:
        """Promote a session past MFA under a fresh id; the old id stops working."""
        now = self.app.clock.now()
        with self.app.session() as s:
            old = s.get(ConsoleSession, digest(token))
            if old is None or old.stage != "mfa" or old.revoked_at is not None:
                raise NotFound("no login in progress")
            old.revoked_at = now
            new_token, row = self._new_row(
                kind="staff",
                stage="full",
                lifetime=timedelta(hours=self.web.absolute_timeout_hours),
                client_ip=old.client_ip,
                user_agent=old.user_agent,
                user_id=old.user_id,
            )
            s.add(row)
        return new_token

    def mark_reauth(self, session_hash: str) -> None:
        with self.app.session() as s:
            s.execute(
                update(ConsoleSession)
                .where(ConsoleSession.session_hash == session_hash)
                .values(reauth_at=self.app.clock.now())
            )

    def recently_authenticated(self, info: SessionInfo) -> bool:
        if info.reauth_at is None:
            return False
        return self.app.clock.now() - info.reauth_at < timedelta(minutes=self.web.reauth_minutes)

    def set_challenge(self, session_hash: str, challenge: bytes | None) -> None:
        with self.app.session() as s:
            s.execute(
                update(ConsoleSession)
                .where(ConsoleSession.session_hash == session_hash)
                .values(challenge=challenge)
            )

    def pop_challenge(self, session_hash: str) -> bytes | None:
        with self.app.session() as s:
            row = s.get(ConsoleSession, session_hash)
            if row is None:
                return None
            value, row.challenge = row.challenge, None
            return value

    def list_for(self, user_id: int) -> list[SessionInfo]:
        now = self.app.clock.now()
        with self.app.session() as s:
            user = s.get(ConsoleUser, user_id)
            rows = s.scalars(
                select(ConsoleSession)
                .where(
                    ConsoleSession.user_id == user_id,
                    ConsoleSession.revoked_at.is_(None),
                    ConsoleSession.stage == "full",
                    ConsoleSession.expires_at > now,
                    ConsoleSession.last_seen > now - self.idle,
                )
                .order_by(ConsoleSession.created_at.desc())
            ).all()
            return [self._info(r, user) for r in rows]

    def revoke(self, public_id: str, *, user_id: int, actor: str) -> None:
        """End one of the user's own sessions (object-level check: only their own)."""
        with self.app.session() as s:
            row = s.scalar(
                select(ConsoleSession).where(
                    ConsoleSession.public_id == public_id, ConsoleSession.user_id == user_id
                )
            )
            if row is None or row.revoked_at is not None:
                raise NotFound(f"no session {public_id}")
            row.revoked_at = self.app.clock.now()
        self.app.record(Tag.SESSION_REVOKED, actor=actor, subject=public_id)

    def end(self, token: str) -> None:
        with self.app.session() as s:
            s.execute(
                update(ConsoleSession)
                .where(ConsoleSession.session_hash == digest(token))
                .values(revoked_at=self.app.clock.now())
            )

    def revoke_all(self, user_id: int, *, actor: str, keep: str | None = None) -> int:
        with self.app.session() as s:
            stmt = update(ConsoleSession).where(
                ConsoleSession.user_id == user_id, ConsoleSession.revoked_at.is_(None)
            )
            if keep:
                stmt = stmt.where(ConsoleSession.session_hash != keep)
            n = s.execute(stmt.values(revoked_at=self.app.clock.now())).rowcount  # type: ignore[attr-defined]
        if n:
            self.app.record(Tag.SESSION_REVOKED, actor=actor, subject=f"user:{user_id}", count=n)
        return int(n or 0)
