"""Console users: creation with the password policy, MFA enrolment, login checks.

The login itself is two steps (password, then TOTP or a security key) so that the password
step can be throttled and audited on its own; :mod:`phiguard.web.auth.sessions` keeps the
half-logged-in state server-side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phiguard.app import App
from phiguard.audit.tags import Tag
from phiguard.errors import Conflict, NotFound, PermissionDenied, UsageError
from phiguard.web.auth import passwords, totp
from phiguard.web.auth.roles import MFA_REQUIRED, Role, parse_role
from phiguard.web.auth.throttle import LoginThrottle, Throttled
from phiguard.web.config import WebSettings
from phiguard.web.models import ConsoleUser, WebAuthnCredential

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
_TOTP_CONTEXT = b"console:totp"


@dataclass(frozen=True)
class UserView:
    user_id: int
    username: str
    display_name: str
    role: str
    status: str
    account_id: str | None
    mfa: bool
    security_keys: int
    created_at: datetime
    last_login_at: datetime | None

    @property
    def needs_mfa(self) -> bool:
        return self.mfa or self.security_keys > 0


@dataclass(frozen=True)
class Enrolment:
    user: UserView
    totp_secret: str | None
    otpauth_uri: str | None


class Users:
    def __init__(self, app: App, web: WebSettings | None = None) -> None:
        self.app = app
        self.web = web or WebSettings()
        self.throttle = LoginThrottle(self.web)

    # -- reading -----------------------------------------------------------------------
    def _view(self, s: Session, u: ConsoleUser) -> UserView:
        keys = (
            s.scalar(
                select(func.count())
                .select_from(WebAuthnCredential)
                .where(WebAuthnCredential.user_id == u.user_id)
            )
            or 0
        )
        return UserView(
            u.user_id,
            u.username,
            u.display_name,
            u.role,
            u.status,
            u.account_id,
            u.totp_secret is not None,
            int(keys),
            u.created_at,
            u.last_login_at,
        )

    def list(self) -> list[UserView]:
        with self.app.session() as s:
            return [
                self._view(s, u)
                for u in s.scalars(select(ConsoleUser).order_by(ConsoleUser.username))
            ]

    def get(self, username: str) -> UserView:
        with self.app.session() as s:
            return self._view(s, self._row(s, username))

    def by_id(self, user_id: int) -> UserView:
        with self.app.session() as s:
            u = s.get(ConsoleUser, user_id)
            if u is None:
                raise NotFound(f"no console user {user_id}")
            return self._view(s, u)

    def has_admin(self) -> bool:
        with self.app.session() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(ConsoleUser)
                    .where(ConsoleUser.role == Role.ADMIN, ConsoleUser.status == "active")
                )
                != 0
            )

    @staticmethod
    def _row(s: Session, username: str) -> ConsoleUser:
        u = s.scalar(select(ConsoleUser).where(ConsoleUser.username == username.lower()))
        if u is None:
            raise NotFound(f"no console user {username!r}")
        return u

    # -- changing ----------------------------------------------------------------------
    def create(
        self,
        username: str,
        role: str,
        password: str,
        *,
        actor: str,
        display_name: str = "",
        with_totp: bool | None = None,
        account_id: str | None = None,
    ) -> Enrolment:
        """Create a user. Roles that require MFA always get a TOTP secret, returned once."""
        username = username.strip().lower()
        if not _USERNAME.fullmatch(username):
            raise UsageError("a user name is 3-64 characters: a-z, 0-9, '.', '_' or '-'")
        chosen = parse_role(role)
        passwords.check_password(password, username=username)
        enrol = with_totp if with_totp is not None else chosen in MFA_REQUIRED
        if chosen in MFA_REQUIRED and not enrol:
            raise UsageError(f"role {chosen.value} requires MFA")
        secret = totp.new_secret() if enrol else None
        now = self.app.clock.now()
        pw_hash = passwords.hash_password(password)
        with self.app.session() as s:
            if s.scalar(select(ConsoleUser).where(ConsoleUser.username == username)):
                raise Conflict(f"console user {username!r} already exists")
            u = ConsoleUser(
                username=username,
                display_name=display_name[:200],
                role=chosen.value,
                account_id=(account_id or "").strip()[:64] or None,
                password_hash=pw_hash,
                totp_secret=self.app.cipher.encrypt(secret.encode(), _TOTP_CONTEXT)
                if secret
                else None,
                totp_last_step=0,
                status="active",
                created_at=now,
                created_by=actor,
                password_changed_at=now,
            )
            s.add(u)
            s.flush()
            view = self._view(s, u)
        self.app.record(
            Tag.USER_CREATED, actor=actor, subject=username, role=chosen.value, mfa=bool(secret)
        )
        uri = totp.provisioning_uri(secret, username) if secret else None
        return Enrolment(view, secret, uri)

    def enrol_totp(self, username: str, *, actor: str) -> Enrolment:
        """(Re-)enrol TOTP: a new secret replaces the old one, shown once."""
        secret = totp.new_secret()
        with self.app.session() as s:
            u = self._row(s, username)
            u.totp_secret = self.app.cipher.encrypt(secret.encode(), _TOTP_CONTEXT)
            u.totp_last_step = 0
            s.flush()
            view = self._view(s, u)
        self.app.record(Tag.MFA_ENROLLED, actor=actor, subject=view.username, method="totp")
        return Enrolment(view, secret, totp.provisioning_uri(secret, view.username))

    def set_status(self, username: str, status: str, *, actor: str) -> UserView:
        if status not in {"active", "disabled"}:
            raise UsageError("status is active or disabled")
        with self.app.session() as s:
            u = self._row(s, username)
            if status == "disabled" and u.role == Role.ADMIN:
                admins = s.scalar(
                    select(func.count())
                    .select_from(ConsoleUser)
                    .where(ConsoleUser.role == Role.ADMIN, ConsoleUser.status == "active")
                )
                if admins == 1 and u.status == "active":
                    raise Conflict("cannot disable the last active admin")
            u.status = status
            view = self._view(s, u)
        if status == "disabled":
            from phiguard.web.auth.sessions import Sessions

            Sessions(self.app, self.web).revoke_all(view.user_id, actor=actor)
        self.app.record(
            Tag.USER_DISABLED if status == "disabled" else Tag.USER_ENABLED,
            actor=actor,
            subject=view.username,
        )
        return view

    def change_password(self, user_id: int, old: str, new: str) -> None:
        with self.app.session() as s:
            u = s.get(ConsoleUser, user_id)
            if u is None:
                raise NotFound("no such user")
            if not passwords.verify_password(u.password_hash, old):
                raise PermissionDenied("the current password is wrong")
            passwords.check_password(new, username=u.username)
            u.password_hash = passwords.hash_password(new)
            u.password_changed_at = self.app.clock.now()
            name = u.username
        self.app.record(Tag.PASSWORD_CHANGED, actor=name, subject=name)

    # -- login steps -------------------------------------------------------------------
    def login_password(self, username: str, password: str, client_ip: str) -> UserView:
        """First step. Raises :class:`Throttled` or ``PermissionDenied`` (same message for
        an unknown user and a wrong password)."""
        username = username.strip().lower()[:64]
        now = self.app.clock.now()
        with self.app.session() as s:
            self.throttle.check(s, username, client_ip, now)
        with self.app.session() as s:
            u = s.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
            ok = passwords.verify_password(u.password_hash if u else None, password)
            ok = ok and u is not None and u.status == "active"
            self.throttle.record(s, username, client_ip, now, success=ok)
            if ok and u is not None:
                if passwords.needs_rehash(u.password_hash):
                    u.password_hash = passwords.hash_password(password)
                view = self._view(s, u)
        if not ok:
            self.app.record(
                Tag.USER_LOGIN_FAILED,
                actor=username,
                subject=username,
                stage="password",
                client_ip=client_ip,
            )
            raise PermissionDenied("wrong user name or password")
        return view

    def login_totp(self, user_id: int, code: str, client_ip: str) -> UserView:
        """Second step. A code is good once; failures count towards the account lockout."""
        now = self.app.clock.now()
        with self.app.session() as s:
            u = s.get(ConsoleUser, user_id)
            if u is None or u.status != "active":
                raise PermissionDenied("this account cannot log in")
            self.throttle.check(s, u.username, client_ip, now)
        with self.app.session() as s:
            u = s.get(ConsoleUser, user_id)
            assert u is not None
            step = None
            if u.totp_secret is not None:
                secret = self.app.cipher.decrypt(u.totp_secret, _TOTP_CONTEXT).decode()
                step = totp.verify(secret, code, now=now, last_step=u.totp_last_step)
            if step is not None:
                u.totp_last_step = step
            self.throttle.record(
                s, u.username, client_ip, now, success=step is not None, stage="mfa"
            )
            name = u.username
        if step is None:
            self.app.record(
                Tag.USER_LOGIN_FAILED, actor=name, subject=name, stage="mfa", client_ip=client_ip
            )
            raise PermissionDenied("that code is wrong, expired or already used")
        return self.by_id(user_id)

    def mark_login(self, user_id: int, client_ip: str, method: str) -> None:
        with self.app.session() as s:
            u = s.get(ConsoleUser, user_id)
            assert u is not None
            u.last_login_at = self.app.clock.now()
            name = u.username
        self.app.record(
            Tag.USER_LOGIN, actor=name, subject=name, method=method, client_ip=client_ip
        )

    def confirm_password(self, user_id: int, password: str, client_ip: str) -> None:
        """Re-authentication for a sensitive action: the password again, throttled."""
        view = self.by_id(user_id)
        self.login_password(view.username, password, client_ip)


__all__ = ["Enrolment", "Throttled", "UserView", "Users"]
