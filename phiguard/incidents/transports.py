"""Notification transports: one :class:`Transport` protocol, real gateways, and a mock
shipped beside each (the httpx ``MockTransport`` pattern: passed in, never monkeypatched).

=============  ===========================  ================================================
channel        real transport               test double
=============  ===========================  ================================================
app (push)     :class:`PushGateway` (HTTP)  :class:`MockTransport` ("app")
sms            :class:`SmsGateway` (HTTP)   :class:`MockTransport` ("sms")
post           :class:`MailHouseExport`     :class:`MockTransport` ("post")
email          :class:`SmtpTransport`       :class:`MockTransport` ("email")
=============  ===========================  ================================================

Every message carries ``message_id``, an idempotency key that names the notice, channel and
attempt. Gateways are expected to drop a second message with the same key (the HTTP
gateways send it as ``Idempotency-Key``); ``lookup`` asks whether a message was received,
which is how a campaign interrupted between "handed over" and "recorded" finds out, instead
of sending again. ``TransportUnavailable`` means "stop the campaign, nothing more will get
through"; a per-message problem is a ``failed`` result and goes to retry/fallback.
"""

from __future__ import annotations

import contextlib
import csv
import re
import smtplib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from phiguard.errors import UsageError

if TYPE_CHECKING:
    from phiguard.incidents.settings import IncidentSettings

LINK = re.compile(r"(https?://|www\.|\b[a-z0-9-]+\.(?:hk|com|org|net|gov|io|ly|me)\b)", re.I)


class TransportUnavailable(Exception):
    """The gateway as a whole cannot take messages now; the campaign stops and resumes later."""


@dataclass(frozen=True)
class Message:
    message_id: str
    channel: str
    recipient: str  # patient_id for app push, a phone number for SMS, an address label for post
    body: str
    subject: str = ""
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    message_id: str
    state: str  # sent, delivered, failed
    transport_ref: str = ""
    error: str = ""


class Transport(Protocol):
    channel: str

    def send(self, message: Message) -> SendResult: ...

    def lookup(self, message_id: str) -> SendResult | None: ...

    def close(self) -> None: ...


# -- HTTP gateways -----------------------------------------------------------------------
@dataclass
class _HttpGateway:
    base_url: str
    api_key: str
    client: httpx.Client | None = None
    timeout: float = 10.0
    channel: str = ""
    path: str = "/v1/messages"

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = httpx.Client(base_url=self.base_url, timeout=self.timeout)
        self._headers = {"Authorization": f"Bearer {self.api_key}"}

    def _payload(self, m: Message) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, message: Message) -> SendResult:
        assert self.client is not None
        headers = {**self._headers, "Idempotency-Key": message.message_id}
        try:
            r = self.client.post(self.path, json=self._payload(message), headers=headers)
        except httpx.TransportError as exc:
            raise TransportUnavailable(
                f"{self.channel} gateway unreachable: {type(exc).__name__}"
            ) from None
        if r.status_code >= 500 or r.status_code == 429:
            raise TransportUnavailable(f"{self.channel} gateway answered {r.status_code}")
        if r.status_code == 409:  # already received under this idempotency key
            return SendResult(message.message_id, "sent", str(r.json().get("ref", "")))
        if r.status_code >= 400:
            return SendResult(
                message.message_id, "failed", error=f"HTTP {r.status_code}: {r.text[:200]}"
            )
        doc = r.json()
        return SendResult(message.message_id, doc.get("state", "sent"), str(doc.get("ref", "")))

    def lookup(self, message_id: str) -> SendResult | None:
        assert self.client is not None
        try:
            r = self.client.get(f"{self.path}/{message_id}", headers=self._headers)
        except httpx.TransportError as exc:
            raise TransportUnavailable(
                f"{self.channel} gateway unreachable: {type(exc).__name__}"
            ) from None
        if r.status_code == 404:
            return None
        if r.status_code >= 400:
            raise TransportUnavailable(
                f"{self.channel} gateway answered {r.status_code} to a lookup"
            )
        doc = r.json()
        return SendResult(message_id, doc.get("state", "sent"), str(doc.get("ref", "")))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


@dataclass
class PushGateway(_HttpGateway):
    """The hospital app's push service: the full notice is shown inside the logged-in app,
    addressed by the pseudonymous patient id (the gateway maps it to devices)."""

    channel: str = "app"

    def _payload(self, m: Message) -> dict[str, Any]:
        return {"id": m.message_id, "patient_id": m.recipient, "title": m.subject, "body": m.body}


@dataclass
class SmsGateway(_HttpGateway):
    """An SMS gateway sending from a registered sender ID. Refuses any body with a link."""

    sender_id: str = ""
    channel: str = "sms"

    def _payload(self, m: Message) -> dict[str, Any]:
        return {"id": m.message_id, "from": self.sender_id, "to": m.recipient, "text": m.body}

    def send(self, message: Message) -> SendResult:
        if LINK.search(message.body):
            return SendResult(message.message_id, "failed", error="SMS body contains a link")
        return super().send(message)


# -- post: the mail house ----------------------------------------------------------------
MAILHOUSE_COLUMNS = (
    "seq",
    "notice_ref",
    "pages",
    "first_page",
    "name_en",
    "name_zh",
    "address_1",
    "address_2",
    "address_3",
    "address_4",
    "language",
)


@dataclass
class MailHouseExport:
    """Appends one manifest row per letter to the mail house's CSV; the letters themselves are
    in the merged PDF. The file holds names and addresses, so it is written only where the
    user asked (0600) and only for this hand-over."""

    path: Path
    channel: str = "post"
    _rows: dict[str, SendResult] = field(default_factory=dict)
    _fh: Any = None
    _writer: Any = None

    def _open(self) -> None:
        if self._writer is None:
            import os

            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._fh, fieldnames=list(MAILHOUSE_COLUMNS))
            self._writer.writeheader()

    def send(self, message: Message) -> SendResult:
        if message.message_id in self._rows:
            return self._rows[message.message_id]
        self._open()
        row = {k: message.meta.get(k, "") for k in MAILHOUSE_COLUMNS}
        self._writer.writerow(row)
        res = SendResult(message.message_id, "sent", f"{self.path.name}#{row['seq']}")
        self._rows[message.message_id] = res
        return res

    def lookup(self, message_id: str) -> SendResult | None:
        return self._rows.get(message_id)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# -- e-mail ------------------------------------------------------------------------------
@dataclass
class SmtpTransport:
    """E-mail through an SMTP relay (STARTTLS when offered). ``connect`` is injectable."""

    host: str
    port: int = 25
    sender: str = ""
    username: str | None = None
    password: str | None = None
    connect: Callable[[str, int], smtplib.SMTP] = smtplib.SMTP
    channel: str = "email"
    _smtp: smtplib.SMTP | None = None
    _sent: dict[str, SendResult] = field(default_factory=dict)

    def _session(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                smtp = self.connect(self.host, self.port)
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls()
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
            except (OSError, smtplib.SMTPException) as exc:
                raise TransportUnavailable(
                    f"SMTP relay {self.host}:{self.port}: {type(exc).__name__}"
                ) from None
            self._smtp = smtp
        return self._smtp

    def send(self, message: Message) -> SendResult:
        if message.message_id in self._sent:
            return self._sent[message.message_id]
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = self.sender, message.recipient, message.subject
        mail["Message-ID"] = f"<{message.message_id}@phiguard>"
        mail.set_content(message.body)
        try:
            refused = self._session().send_message(mail)
        except smtplib.SMTPRecipientsRefused:
            return SendResult(message.message_id, "failed", error="recipient refused")
        except (OSError, smtplib.SMTPException) as exc:
            self._smtp = None
            raise TransportUnavailable(f"SMTP relay failed: {type(exc).__name__}") from None
        res = SendResult(
            message.message_id,
            "failed" if refused else "sent",
            error="recipient refused" if refused else "",
        )
        self._sent[message.message_id] = res
        return res

    def lookup(self, message_id: str) -> SendResult | None:
        return self._sent.get(message_id)

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._smtp = None


# -- the test double -----------------------------------------------------------------------
@dataclass
class MockTransport:
    """Accepts messages in memory and remembers them by ``message_id`` (so a resend under the
    same key is recorded as a duplicate, never delivered twice).

    ``fail`` names recipients whose messages fail; ``down_after`` makes the gateway go down
    after that many accepted messages; ``lose_reply_after`` accepts one more message and
    then raises as if the reply was lost — the case the campaign's ``lookup`` is for.
    """

    channel: str
    fail: set[str] = field(default_factory=set)
    down_after: int | None = None
    lose_reply_after: int | None = None
    state: str = "sent"
    sent: dict[str, Message] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    calls: int = 0

    def send(self, message: Message) -> SendResult:
        self.calls += 1
        if message.message_id in self.sent:
            self.duplicates.append(message.message_id)
            return SendResult(message.message_id, self.state, f"mock:{message.message_id}")
        if self.down_after is not None and len(self.sent) >= self.down_after:
            raise TransportUnavailable(f"mock {self.channel} gateway is down")
        if message.recipient in self.fail:
            return SendResult(message.message_id, "failed", error="mock: recipient rejected")
        if self.channel == "sms" and LINK.search(message.body):
            return SendResult(message.message_id, "failed", error="SMS body contains a link")
        self.sent[message.message_id] = message
        if self.lose_reply_after is not None and len(self.sent) > self.lose_reply_after:
            self.lose_reply_after = None
            raise TransportUnavailable(f"mock {self.channel} gateway: reply lost")
        return SendResult(message.message_id, self.state, f"mock:{message.message_id}")

    def lookup(self, message_id: str) -> SendResult | None:
        if message_id in self.sent:
            return SendResult(message_id, self.state, f"mock:{message_id}")
        return None

    def close(self) -> None:
        pass

    def recovered(self) -> MockTransport:
        """The same gateway after the outage (keeps what it received)."""
        self.down_after = None
        return self


def from_settings(cfg: IncidentSettings, channels: Iterable[str]) -> dict[str, Transport]:
    """The transports the settings describe, for the requested automatic channels."""
    wanted = [c for c in channels if c in ("app", "sms")]
    if cfg.transports == "mock":
        return {c: MockTransport(c) for c in wanted}
    if cfg.transports != "gateways":
        raise UsageError("PHIGUARD_INCIDENTS_TRANSPORTS must be 'gateways' or 'mock'")
    out: dict[str, Transport] = {}
    if "app" in wanted and cfg.push_url:
        out["app"] = PushGateway(cfg.push_url, cfg.push_api_key.get_secret_value())
    if "sms" in wanted and cfg.sms_url:
        out["sms"] = SmsGateway(
            cfg.sms_url, cfg.sms_api_key.get_secret_value(), sender_id=cfg.sms_sender_id
        )
    return out
