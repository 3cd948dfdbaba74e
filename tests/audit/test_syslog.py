"""The IHE ATNA-style syslog listener: RFC 5424 messages, RFC 6587 framing, RFC 5425 TLS."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
from pathlib import Path

import pytest

from phiguard.app import App
from phiguard.audit.fhir import row_to_audit_event
from phiguard.audit.ingest_syslog import SyslogError, message_to_row, parse_message
from phiguard.audit.syslog import SyslogListener, send, tls_context
from phiguard.settings import Settings
from tests.audit.eventfiles import event, stored

DICOM = (
    b'<AuditMessage><EventIdentification EventActionCode="R" '
    b'EventDateTime="2026-04-03T01:13:00+08:00" EventOutcomeIndicator="0">'
    b'<EventID csd-code="110110" codeSystemName="DCM"/>'
    b'<PurposeOfUse csd-code="TREAT"/></EventIdentification>'
    b'<ActiveParticipant UserID="nurse-1" UserIsRequestor="true" '
    b'NetworkAccessPointID="10.1.1.1" NetworkAccessPointTypeCode="2"/>'
    b'<ActiveParticipant UserID="ws-9" UserIsRequestor="false"/>'
    b'<AuditSourceIdentification AuditSourceID="ePR"/>'
    b'<ParticipantObjectIdentification ParticipantObjectID="P0000077" '
    b'ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">'
    b'<ParticipantObjectDetail type="fields" value="bmFtZSxoa2lk"/>'
    b"</ParticipantObjectIdentification></AuditMessage>"
)


def syslog(seq: int, body: bytes, app_name: str = "CMS") -> bytes:
    return (
        b"<110>1 2026-04-03T01:12:00.000+08:00 cms01.kec %s 4711 AUDIT "
        b'[meta sequenceId="%d"][origin ip="10.0.0.1" software="a \\"quoted\\" \\] name"] '
        % (app_name.encode(), seq)
    ) + body


def json_msg(i: int) -> bytes:
    row = event(i)
    del row["seq"]  # carried by [meta sequenceId]
    return syslog(i, json.dumps(row).encode())


def test_rfc5424_header_and_structured_data() -> None:
    m = parse_message(syslog(7, b"\xef\xbb\xbf{}"))
    assert (m.facility, m.severity, m.hostname, m.app_name, m.msgid) == (
        13,
        6,
        "cms01.kec",
        "CMS",
        "AUDIT",
    )
    assert m.sd["meta"] == {"sequenceId": "7"}
    assert m.sd["origin"]["software"] == 'a "quoted" ] name'
    assert m.msg == b"{}"  # the BOM is not part of the payload


def test_payloads_json_fhir_and_dicom() -> None:
    assert message_to_row(json_msg(3))["seq"] == "3"
    fhir = row_to_audit_event(event(5))
    fhir["extension"] = []  # the sequence number comes from [meta sequenceId]
    row = message_to_row(syslog(5, json.dumps(fhir).encode()))
    assert (row["seq"], row["patient_id"], row["action"]) == ("5", "P0000005", "read")
    d = message_to_row(syslog(9, DICOM))
    assert d == {
        **d,
        "source": "ePR",
        "seq": "9",
        "account_id": "nurse-1",
        "action": "read",
        "patient_id": "P0000077",
        "fields": "name,hkid",
        "client_ip": "10.1.1.1",
        "device_id": "ws-9",
        "purpose": "TREAT",
        "outcome": "success",
        "event_id": "ePR-9",
    }


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"hello", "bad header"),
        (b"<999>1 - - - - - -", "PRI out of range"),
        (b'<110>1 - h a - - [meta sequenceId="1" ', "SD-PARAM"),
        (b'<110>1 - h a - - [meta sequenceId="1', "unterminated"),
        (b"<110>1 - h a - - - ", "empty MSG"),
        (b"<110>1 - h a - - - plain words", "neither JSON nor"),
        (b'<110>1 - h a - - - <!DOCTYPE x [<!ENTITY a "b">]><AuditMessage/>', "refused"),
    ],
)
def test_bad_messages_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(SyslogError, match=reason):
        message_to_row(raw)


def test_listener_acks_only_what_is_durable(sqlite_app: App) -> None:
    msgs = [json_msg(i) for i in range(1, 6)] + [b"not syslog", syslog(6, DICOM, "ePR")]
    with SyslogListener(sqlite_app, port=0) as listener:
        replies = send("127.0.0.1", listener.port, msgs)
    assert replies[-1] == "ACK 7 6 1"
    got = stored(sqlite_app)
    assert [(r["source"], r["seq"]) for r in got] == [("CMS", s) for s in range(1, 6)] + [
        ("ePR", 6)
    ]
    # the exact message, header and structured data included, is what was sealed
    entries = dict(sqlite_app.audit.entries(0, sqlite_app.audit.size))
    assert entries[got[0]["leaf_index"]] == msgs[0]
    log = (sqlite_app.home.logs / "syslog.log").read_text()
    assert "frame 6 rejected: not an RFC 5424 syslog message" in log
    assert "not syslog" not in log  # the log names the frame, never its content
    # a second process sees the acknowledged events (they are in the log, not just memory)
    other = App.open(Settings(home=sqlite_app.home.root))
    try:
        assert len(stored(other)) == 6
    finally:
        other.close()


def test_a_framing_error_ends_the_connection_after_sealing_what_came_before(
    sqlite_app: App,
) -> None:
    with SyslogListener(sqlite_app, port=0) as listener:
        s = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
        good = json_msg(1)
        s.sendall(b"%d %s" % (len(good), good) + b"12x34 junk")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        s.close()
    lines = data.decode().splitlines()
    assert lines[0] == "ACK 1 1 0" and lines[1].startswith("ERR bad octet count")
    assert len(stored(sqlite_app)) == 1


def test_line_framed_messages_are_accepted(sqlite_app: App) -> None:
    with SyslogListener(sqlite_app, port=0) as listener:
        s = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
        s.sendall(json_msg(1) + b"\n" + json_msg(2) + b"\n")
        s.shutdown(socket.SHUT_WR)
        data = s.recv(4096)
        while more := s.recv(4096):
            data += more
        s.close()
    assert data.decode().splitlines()[-1] == "ACK 2 2 0"


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_with_client_certificates(sqlite_app: App, tmp_path: Path) -> None:
    server_cert, server_key = _certificate(tmp_path, "localhost")
    client_cert, client_key = _certificate(tmp_path, "cms-sender")
    ctx = tls_context(server_cert, server_key, client_ca=client_cert)
    client = ssl.create_default_context(cafile=str(server_cert))
    client.load_cert_chain(str(client_cert), str(client_key))
    with SyslogListener(sqlite_app, port=0, ssl_context=ctx) as listener:
        replies = send(
            "127.0.0.1",
            listener.port,
            [json_msg(1), json_msg(2)],
            ssl_context=client,
            server_hostname="localhost",
        )
        assert replies[-1] == "ACK 2 2 0"
        anonymous = ssl.create_default_context(cafile=str(server_cert))
        try:  # TLS 1.3 reports the refused client certificate after the handshake
            refused = send(
                "127.0.0.1",
                listener.port,
                [json_msg(3)],
                ssl_context=anonymous,
                server_hostname="localhost",
                timeout=5,
            )
        except (ssl.SSLError, OSError):
            refused = []
        assert not any(r.startswith("ACK") for r in refused)
    assert [r["seq"] for r in stored(sqlite_app)] == [1, 2]
    entries = [e for e in sqlite_app.audit.records() if e.data.startswith(b"#phiguard-batch/1")]
    assert json.loads(entries[0].data.split(b" ", 1)[1])["tls"] is True


def test_listener_from_settings(tmp_path: Path) -> None:
    app = App.init(Settings(home=tmp_path / "h"))
    try:
        assert SyslogListener.from_settings(app) is None
        app.settings = app.settings.model_copy(update={"syslog_port": 0})
        listener = SyslogListener.from_settings(app)
        assert listener is not None and listener.ssl_context is None
    finally:
        app.close()
