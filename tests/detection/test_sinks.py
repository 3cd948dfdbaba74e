"""Alert sinks against real servers on 127.0.0.1: a webhook receiver, a syslog socket and a
minimal SMTP server. A failing sink does not stop the others."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from phiguard.app import App
from phiguard.detection import alerts
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.sinks import (
    EmailSink,
    MockSink,
    SyslogSink,
    WebhookSink,
    deliver,
    parse_sinks,
)
from phiguard.errors import UsageError
from tests.detection.test_alerts import hit

ALERT = {
    "alert_id": "a-0007",
    "rule": "bulk_export",
    "severity": "critical",
    "account_id": "vx-eng-07",
    "vendor_id": "V012",
    "first_ts": "2026-04-03T01:12:00+08:00",
    "last_ts": "2026-04-03T01:40:11+08:00",
    "patient_count": 56012,
    "score": 0.99,
    "reasons": ["exported 56,012 patient records from KEC"],
    "patient_ids_sample": ["P0001234"],
}


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}/hook", got
    srv.shutdown()


def test_webhook_posts_the_alert_signed(webhook) -> None:  # type: ignore[no-untyped-def]
    url, got = webhook
    WebhookSink(url, secret="s3cret").send(ALERT)
    headers, body = got[0]
    assert json.loads(body)["alert_id"] == "a-0007"
    mac = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Phiguard-Signature"] == f"sha256={mac}"


def test_syslog_udp_is_rfc5424_without_patient_ids() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        sink = SyslogSink("127.0.0.1", rx.getsockname()[1])
        sink.send({k: v for k, v in ALERT.items() if k != "patient_ids_sample"})
        data = rx.recv(65535).decode()
    assert data.startswith("<106>1 ")  # facility 13 (log audit) × 8 + 2 (critical)
    assert 'alert_id="a-0007"' in data and 'severity="critical"' in data
    assert "exported 56,012 patient records" in data and "P0001234" not in data


def test_email_goes_through_smtp() -> None:
    received: list[str] = []

    class Smtp(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            w = self.wfile.write
            w(b"220 localhost\r\n")
            data = False
            body: list[str] = []
            for raw in self.rfile:
                line = raw.decode().rstrip("\r\n")
                if data:
                    if line == ".":
                        received.append("\n".join(body))
                        data = False
                        w(b"250 queued\r\n")
                    else:
                        body.append(line)
                    continue
                cmd = line[:4].upper()
                if cmd in ("EHLO", "HELO"):
                    w(b"250 localhost\r\n")
                elif cmd == "DATA":
                    data = True
                    w(b"354 go on\r\n")
                elif cmd == "QUIT":
                    w(b"221 bye\r\n")
                    return
                else:
                    w(b"250 ok\r\n")

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Smtp)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        EmailSink("127.0.0.1", srv.server_address[1], ["soc@hospital.example"]).send(
            {k: v for k, v in ALERT.items() if k != "patient_ids_sample"}
        )
    finally:
        srv.shutdown()
    msg = received[0]
    assert "Subject: [phiguard] critical alert a-0007: bulk_export" in msg
    assert "exported 56,012 patient records" in msg and "P0001234" not in msg


def test_sink_settings_are_parsed_or_refused() -> None:
    p = DetectionSettings()
    kinds = [
        s.name
        for s in parse_sinks(
            "webhook:http://127.0.0.1:9/x, email:smtp://127.0.0.1:25?to=a@b, "
            "syslog:udp://127.0.0.1:514, mock",
            p,
        )
    ]
    assert kinds == ["webhook", "email", "syslog", "mock"]
    for bad in ("pager:123", "email:smtp://host", "syslog:http://x"):
        with pytest.raises(UsageError):
            parse_sinks(bad, p)


def test_deliver_sends_once_per_severity_and_survives_a_broken_sink(sqlite_app: App) -> None:
    p = DetectionSettings(sink_min_severity="high")
    good, broken = MockSink(), MockSink(fail=True)
    _, raised = alerts.save(
        sqlite_app,
        alerts.episodes(
            [
                hit("bulk_export", "high", "vx", 33, 1, 600),
                hit("dormant_reactivated", "low", "d06", 33, 13, 5),
            ],
            {},
            p,
        ),
        p,
        origin="live",
        actor="t",
    )
    assert deliver(sqlite_app, raised, p, [broken, good]) == 1
    assert [a["account_id"] for a in good.sent] == ["vx"]  # the low one stays in phiguard
    assert deliver(sqlite_app, [alerts.get(sqlite_app, a.alert_id) for a in raised], p, [good]) == 0
    _, raised = alerts.save(
        sqlite_app,
        alerts.episodes([hit("bulk_export", "critical", "vx", 33, 1, 1500)], {}, p),
        p,
        origin="live",
        actor="t",
    )
    deliver(sqlite_app, raised, p, [good])
    assert [a["severity"] for a in good.sent] == ["high", "critical"]
