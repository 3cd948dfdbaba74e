"""Login throttling per account and per address (ASVS 6.3.1, NIST SP 800-63B §5.2.2).

Failed attempts (password or MFA step) are kept in ``console_login_attempts``. An account
with ``login_max_failures_account`` failures inside the window, or an address with
``login_max_failures_address``, is refused until the oldest counted failure leaves the
window. A success for an account clears its count, so a person who mistypes twice and then
gets it right is not punished later. The refusal does not say whether the account exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from phiguard.errors import PermissionDenied
from phiguard.web.config import WebSettings
from phiguard.web.models import LoginAttempt


class Throttled(PermissionDenied):
    """Too many failed logins; ``retry_after`` seconds until the next try is accepted."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class LoginThrottle:
    web: WebSettings

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.web.login_window_minutes)

    def _oldest_blocking(
        self, s: Session, column: Any, value: str, limit: int, now: datetime
    ) -> datetime | None:
        since = now - self.window
        base = select(LoginAttempt.at).where(
            column == value, LoginAttempt.at > since, LoginAttempt.success.is_(False)
        )
        if column is LoginAttempt.username:
            last_ok = s.scalar(
                select(func.max(LoginAttempt.at)).where(
                    LoginAttempt.username == value, LoginAttempt.success.is_(True)
                )
            )
            if last_ok is not None:
                base = base.where(LoginAttempt.at > last_ok)
        rows = s.scalars(base.order_by(LoginAttempt.at.desc()).limit(limit)).all()
        if len(rows) < limit:
            return None
        return rows[-1]

    def check(self, s: Session, username: str, client_ip: str, now: datetime) -> None:
        waits = []
        for column, value, limit in (
            (LoginAttempt.username, username, self.web.login_max_failures_account),
            (LoginAttempt.client_ip, client_ip, self.web.login_max_failures_address),
        ):
            oldest = self._oldest_blocking(s, column, value, limit, now)
            if oldest is not None:
                waits.append(int((oldest + self.window - now).total_seconds()) + 1)
        if waits:
            raise Throttled(max(1, max(waits)))

    def record(
        self,
        s: Session,
        username: str,
        client_ip: str,
        now: datetime,
        *,
        success: bool,
        stage: str = "password",
    ) -> None:
        s.add(
            LoginAttempt(
                username=username[:64],
                client_ip=client_ip[:64],
                at=now,
                success=success,
                stage=stage,
            )
        )
        # keep the table small: attempts older than a day no longer decide anything
        s.execute(delete(LoginAttempt).where(LoginAttempt.at < now - timedelta(days=1)))
