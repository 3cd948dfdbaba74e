"""Where alerts go: a webhook, e-mail over SMTP, syslog (RFC 5424), or a mock for tests.

Every sink has the same one-method interface and is passed in, not patched: tests hand the
watcher a :class:`MockSink` and read what it received. Sinks carry the alert as spec §3.1
prints it; e-mail and syslog leave out the patient id sample (those channels are copied and
archived widely — an investigator opens the alert in phiguard for the ids).

A failing sink never stops detection: the failure is logged and the next sink is tried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from phiguard.detection.rules import RANK
from phiguard.detection.settings import DetectionSettings
from phiguard.errors import UsageError

if TYPE_CHECKING:
    from phiguard.app import App
    from phiguard.detection.models import Alert

log = logging.getLogger("phiguard.detection.sinks")
SYSLOG_SEVERITY = {"low": 5, "medium": 4, "high": 3, "critical": 2}  # notice … critical
SYSLOG_FACILITY = 13  # log audit


class Sink(Protocol):
    name: str

    def send(self, alert: dict[str, Any]) -> None: ...


@dataclass
class MockSink:
    """Keeps what it is sent; with ``fail=True`` raises, to test that detection carries on."""

    name: str = "mock"
    sent: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def send(self, alert: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("mock sink configured to fail")
        self.sent.append(alert)


def _public(alert: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in alert.items() if k != "patient_ids_sample"}


@dataclass
class WebhookSink:
    url: str
    secret: str = ""
    timeout: float = 5.0
    name: str = "webhook"

    def send(self, alert: dict[str, Any]) -> None:
        import httpx

        body = json.dumps(alert, ensure_ascii=False, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "phiguard"}
        if self.secret:
            mac = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Phiguard-Signature"] = f"sha256={mac}"
        r = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
        r.raise_for_status()


@dataclass
class EmailSink:
    host: str
    port: int
    to: list[str]
    sender: str = "phiguard@localhost"
    starttls: bool = False
    timeout: float = 10.0
    name: str = "email"

    def send(self, alert: dict[str, Any]) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"] = self.sender, ", ".join(self.to)
        who = alert.get("account_id") or "a log source"
        msg["Subject"] = (
            f"[phiguard] {alert['severity']} alert {alert['alert_id']}: {alert['rule']} — {who}"
        )
        lines = [
            f"{alert['severity'].upper()} alert {alert['alert_id']} (score {alert['score']})",
            f"account: {alert.get('account_id')}   vendor: {alert.get('vendor_id') or '-'}",
            f"from {alert['first_ts']} to {alert['last_ts']}, {alert['patient_count']:,} patients",
            "",
            *[f"- {r}" for r in alert["reasons"]],
            "",
            f"Open it with: phiguard alerts show {alert['alert_id']}",
        ]
        msg.set_content("\n".join(lines))
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            smtp.send_message(msg)


@dataclass
class SyslogSink:
    host: str
    port: int
    protocol: str = "udp"
    app_name: str = "phiguard"
    name: str = "syslog"

    def format(self, alert: dict[str, Any]) -> bytes:
        pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY[alert["severity"]]
        ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        host = socket.gethostname() or "-"

        def esc(v: Any) -> str:
            return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

        sd = (
            "[phiguard@32473 "
            + " ".join(
                f'{k}="{esc(alert.get(k))}"'
                for k in (
                    "alert_id",
                    "rule",
                    "severity",
                    "account_id",
                    "vendor_id",
                    "patient_count",
                    "score",
                )
            )
            + "]"
        )
        msg = "; ".join(alert["reasons"])
        return f"<{pri}>1 {ts} {host} {self.app_name} - ALERT {sd} {msg}".encode()

    def send(self, alert: dict[str, Any]) -> None:
        data = self.format(alert)
        if self.protocol == "tcp":
            with socket.create_connection((self.host, self.port), timeout=5) as s:
                s.sendall(f"{len(data)} ".encode() + data)  # RFC 6587 octet counting
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(data, (self.host, self.port))


def parse_sinks(spec: str, p: DetectionSettings) -> list[Sink]:
    """``webhook:URL, email:smtp://host:port?to=a@b&from=c@d, syslog:udp://host:514, mock``."""
    sinks: list[Sink] = []
    for item in (i.strip() for i in spec.split(",") if i.strip()):
        kind, _, target = item.partition(":")
        if kind == "mock":
            sinks.append(MockSink())
        elif kind == "webhook" and target:
            sinks.append(WebhookSink(target, p.webhook_secret))
        elif kind == "email" and target:
            u = urlsplit(target)
            q = parse_qs(u.query)
            if not u.hostname or not q.get("to"):
                raise UsageError(f"email sink needs smtp://host:port?to=address: {item!r}")
            sinks.append(
                EmailSink(
                    u.hostname,
                    u.port or 25,
                    q["to"][0].split(";"),
                    q.get("from", ["phiguard@localhost"])[0],
                    starttls=u.scheme == "smtp+starttls",
                )
            )
        elif kind == "syslog" and target:
            u = urlsplit(target)
            if u.scheme not in {"udp", "tcp"} or not u.hostname:
                raise UsageError(f"syslog sink needs udp://host:port or tcp://host:port: {item!r}")
            sinks.append(SyslogSink(u.hostname, u.port or 514, u.scheme))
        else:
            raise UsageError(f"unknown alert sink {item!r} (webhook:, email:, syslog:, mock)")
    return sinks


def deliver(
    app: App, alerts: list[Alert], p: DetectionSettings, sinks: list[Sink] | None = None
) -> int:
    """Send alerts at or above ``sink_min_severity`` that were not yet sent at this severity.

    Returns the number of (alert, sink) deliveries that succeeded."""
    from phiguard.detection.alerts import as_json, mark

    sinks = parse_sinks(p.sinks, p) if sinks is None else sinks
    if not sinks:
        return 0
    floor = RANK.get(p.sink_min_severity, RANK["high"])
    ok = 0
    for a in alerts:
        if RANK[a.severity] < floor or (a.notified and RANK[a.notified] >= RANK[a.severity]):
            continue
        payload = as_json(a, app.settings.timezone)
        for sink in sinks:
            try:
                sink.send(payload if sink.name in {"webhook", "mock"} else _public(payload))
                ok += 1
            except Exception as exc:  # any transport failure: log it, try the next sink
                log.warning("alert %s not delivered to %s: %s", a.alert_id, sink.name, exc)
        mark(app, a.alert_id, notified=a.severity)
        a.notified = a.severity
    return ok
