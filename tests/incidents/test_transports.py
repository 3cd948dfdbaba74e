"""The real transports against test doubles of what they talk to (httpx.MockTransport, a fake
SMTP server object): no network, but our code paths, payloads and error mapping."""

from __future__ import annotations

import csv
import json
from typing import ClassVar

import httpx
import pytest

from phiguard.incidents.transports import (
    MailHouseExport,
    Message,
    PushGateway,
    SmsGateway,
    SmtpTransport,
    TransportUnavailable,
)


def _gateway(cls, handler, **kw):
    client = httpx.Client(base_url="http://gw.test", transport=httpx.MockTransport(handler))
    return cls("http://gw.test", "k3y", client=client, **kw)


def test_push_gateway_posts_with_idempotency_key() -> None:
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.method == "GET":
            return httpx.Response(404)
        return httpx.Response(201, json={"ref": "push-1", "state": "sent"})

    gw = _gateway(PushGateway, handler)
    res = gw.send(Message("N1:app:0.1", "app", "P0000001", "body", subject="title"))
    assert res.state == "sent" and res.transport_ref == "push-1"
    body = json.loads(seen[0].content)
    assert body == {"id": "N1:app:0.1", "patient_id": "P0000001", "title": "title", "body": "body"}
    assert seen[0].headers["Idempotency-Key"] == "N1:app:0.1"
    assert seen[0].headers["Authorization"] == "Bearer k3y"
    assert gw.lookup("N1:app:0.1") is None


@pytest.mark.parametrize("status,outcome", [(409, "sent"), (400, "failed")])
def test_gateway_maps_duplicates_and_rejections(status, outcome) -> None:
    gw = _gateway(SmsGateway, lambda r: httpx.Response(status, json={"ref": "x"}), sender_id="#H")
    assert gw.send(Message("m", "sms", "91234567", "hello")).state == outcome


@pytest.mark.parametrize("handler", [lambda r: httpx.Response(503), lambda r: httpx.Response(429)])
def test_gateway_outage_stops_the_campaign(handler) -> None:
    gw = _gateway(SmsGateway, handler, sender_id="#H")
    with pytest.raises(TransportUnavailable):
        gw.send(Message("m", "sms", "91234567", "hello"))


def test_unreachable_gateway_is_unavailable() -> None:
    def boom(req):
        raise httpx.ConnectError("refused")

    with pytest.raises(TransportUnavailable, match="unreachable"):
        _gateway(PushGateway, boom).send(Message("m", "app", "P1", "x"))


def test_sms_with_a_link_is_never_sent() -> None:
    calls = []
    gw = _gateway(
        SmsGateway, lambda r: calls.append(r) or httpx.Response(201, json={}), sender_id="#H"
    )
    for body in ("see https://evil.example", "go to www.hospital.hk", "visit hospital.com.hk now"):
        assert gw.send(Message("m", "sms", "9", body)).state == "failed"
    assert calls == []


def test_mail_house_export_writes_each_letter_once(tmp_path) -> None:
    mh = MailHouseExport(tmp_path / "mh.csv")
    meta = {"seq": "1", "notice_ref": "N1", "pages": "1", "first_page": "1", "name_en": "CHAN"}
    assert mh.send(Message("N1:post:0.1", "post", "N1", "", meta=meta)).state == "sent"
    mh.send(Message("N1:post:0.1", "post", "N1", "", meta=meta))  # same key: not twice
    mh.close()
    with open(tmp_path / "mh.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["name_en"] == "CHAN"
    assert mh.lookup("N1:post:0.1") is not None and mh.lookup("other") is None


class FakeSMTP:
    instances: ClassVar[list[FakeSMTP]] = []

    def __init__(self, host, port):
        self.sent, self.tls = [], False
        FakeSMTP.instances.append(self)

    def ehlo(self):
        pass

    def has_extn(self, name):
        return name == "starttls"

    def starttls(self):
        self.tls = True

    def login(self, u, p):
        self.user = u

    def send_message(self, msg):
        self.sent.append(msg)
        return {}

    def quit(self):
        pass


def test_smtp_transport_uses_starttls_and_dedupes() -> None:
    t = SmtpTransport(
        "127.0.0.1", 2525, sender="dpo@h.example", username="u", password="p", connect=FakeSMTP
    )
    m = Message("N1:email:0.1", "email", "a@b.example", "text", subject="Notice")
    assert t.send(m).state == "sent" and t.send(m).state == "sent"
    smtp = FakeSMTP.instances[-1]
    assert smtp.tls and len(smtp.sent) == 1 and smtp.sent[0]["Subject"] == "Notice"
    t.close()
