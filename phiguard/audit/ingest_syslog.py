"""Syslog messages (RFC 5424) carrying access events, as sent by IHE ATNA-style sources.

A record of format ``syslog`` is one whole RFC 5424 message, exactly as received (the
transport's framing — RFC 6587 octet count — is not part of it). Its MSG part may be:

* a JSON object with the spec §1.6 columns (what phiguard's own sources send);
* a FHIR ``AuditEvent`` in JSON (BALP style, :mod:`phiguard.audit.fhir`);
* a DICOM PS3.15 audit message in XML (``<AuditMessage>``, the classic IHE ATNA payload).

Where the payload lacks a column the message header supplies it: ``seq`` from the
IANA-registered structured-data element ``[meta sequenceId="…"]`` (RFC 5424 §7.3.1),
``source`` from APP-NAME (else HOSTNAME), ``ts`` from TIMESTAMP, and ``event_id`` as
``<source>-<seq>`` when the payload has none.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from phiguard.audit.fhir import FhirError, audit_event_to_row

NIL = "-"
_HEADER = re.compile(
    rb"^<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) "
)
_SD_NAME = re.compile(rb"[^ =\]\"]{1,32}")


class SyslogError(ValueError):
    """The message is not an RFC 5424 message phiguard can map; the text says why."""


@dataclass
class Message:
    pri: int
    version: int
    timestamp: str | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    sd: dict[str, dict[str, str]] = field(default_factory=dict)
    msg: bytes = b""

    @property
    def facility(self) -> int:
        return self.pri >> 3

    @property
    def severity(self) -> int:
        return self.pri & 7


def _nil(v: bytes) -> str | None:
    text = v.decode("ascii", "replace")
    return None if text == NIL else text


def parse_message(raw: bytes) -> Message:
    """Parse an RFC 5424 message (header, structured data, MSG)."""
    m = _HEADER.match(raw)
    if not m:
        raise SyslogError("not an RFC 5424 syslog message (bad header)")
    pri = int(m.group(1))
    if pri > 191:
        raise SyslogError("PRI out of range")
    msg = Message(
        pri,
        int(m.group(2)),
        _nil(m.group(3)),
        _nil(m.group(4)),
        _nil(m.group(5)),
        _nil(m.group(6)),
        _nil(m.group(7)),
    )
    pos = m.end()
    if raw[pos : pos + 1] == b"-":
        pos += 1
    elif raw[pos : pos + 1] == b"[":
        pos = _parse_sd(raw, pos, msg.sd)
    else:
        raise SyslogError("bad STRUCTURED-DATA")
    if pos < len(raw):
        if raw[pos : pos + 1] != b" ":
            raise SyslogError("bad STRUCTURED-DATA (no space before MSG)")
        body = raw[pos + 1 :]
        msg.msg = body[3:] if body.startswith(b"\xef\xbb\xbf") else body
    return msg


def _parse_sd(raw: bytes, pos: int, out: dict[str, dict[str, str]]) -> int:
    n = len(raw)
    while pos < n and raw[pos : pos + 1] == b"[":
        m = _SD_NAME.match(raw, pos + 1)
        if not m:
            raise SyslogError("bad SD-ID")
        sd_id = m.group().decode("ascii", "replace")
        params: dict[str, str] = {}
        pos = m.end()
        while pos < n and raw[pos : pos + 1] == b" ":
            m = _SD_NAME.match(raw, pos + 1)
            if not m or raw[m.end() : m.end() + 2] != b'="':
                raise SyslogError("bad SD-PARAM")
            name = m.group().decode("ascii", "replace")
            i = m.end() + 2
            value = bytearray()
            while True:
                if i >= n:
                    raise SyslogError("unterminated SD-PARAM value")
                c = raw[i]
                if c == 0x5C and i + 1 < n and raw[i + 1] in b'"\\]':
                    value.append(raw[i + 1])
                    i += 2
                    continue
                if c == 0x22:
                    break
                value.append(c)
                i += 1
            params[name] = value.decode("utf-8", "replace")
            pos = i + 1
        if raw[pos : pos + 1] != b"]":
            raise SyslogError("unterminated SD-ELEMENT")
        out.setdefault(sd_id, params)
        pos += 1
    return pos


def message_to_row(raw: bytes) -> dict[str, str | None]:
    """One syslog message → spec §1.6 columns (strings); raises :class:`SyslogError`."""
    msg = parse_message(raw)
    payload = msg.msg.strip()
    row: dict[str, Any]
    if not payload:
        raise SyslogError("the message carries no event (empty MSG)")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SyslogError("MSG is not valid UTF-8") from exc
    if payload.startswith(b"{"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise SyslogError(f"MSG is not valid JSON ({str(exc).split(':')[0]})") from exc
        if not isinstance(obj, dict):
            raise SyslogError("MSG is not a JSON object")
        if obj.get("resourceType") == "AuditEvent":
            obj = _with_meta_seq(obj, msg)
            try:
                row = audit_event_to_row(obj)
            except FhirError as exc:
                raise SyslogError(f"invalid FHIR AuditEvent: {exc}") from exc
        else:
            row = {
                k: (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                for k, v in obj.items()
            }
    elif payload.startswith(b"<"):
        row = dicom_to_row(payload)
    else:
        raise SyslogError("MSG is neither JSON nor a DICOM audit message (XML)")
    return _fill(row, msg)


def _with_meta_seq(obj: dict[str, Any], msg: Message) -> dict[str, Any]:
    from phiguard.audit.fhir import EXT_SEQ

    seq = msg.sd.get("meta", {}).get("sequenceId")
    has = any(isinstance(e, dict) and e.get("url") == EXT_SEQ for e in obj.get("extension") or [])
    if seq is None or has:
        return obj
    return {
        **obj,
        "extension": [*(obj.get("extension") or []), {"url": EXT_SEQ, "valueString": seq}],
    }


def _fill(row: dict[str, Any], msg: Message) -> dict[str, str | None]:
    out: dict[str, str | None] = {
        k: (v if v is None or isinstance(v, str) else str(v)) for k, v in row.items()
    }
    if not out.get("source"):
        out["source"] = msg.app_name or msg.hostname
    if not out.get("seq"):
        out["seq"] = msg.sd.get("meta", {}).get("sequenceId")
    if not out.get("ts"):
        out["ts"] = msg.timestamp
    if not out.get("event_id") and out.get("source") and out.get("seq"):
        out["event_id"] = f"{out['source']}-{out['seq']}"
    return out


# -- DICOM PS3.15 audit messages (IHE ATNA) ----------------------------------------------
_DICOM_ACTION = {"110106": "export", "110112": "search"}
_ACTION_CODE = {"R": "read", "E": "search", "C": "update", "U": "update", "D": "update"}


def dicom_to_row(xml: bytes) -> dict[str, Any]:
    """Map a DICOM audit message (``<AuditMessage>``) onto the spec columns."""
    import xml.etree.ElementTree as ET

    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise SyslogError("DICOM audit message with a DOCTYPE/ENTITY (refused)")
    try:
        # DOCTYPE/ENTITY refused above (no XXE, no entity expansion); expat reads the rest
        root = ET.fromstring(xml)  # noqa: S314
    except ET.ParseError as exc:
        raise SyslogError(f"MSG is not well-formed XML ({exc})") from exc
    if root.tag.rsplit("}", 1)[-1] != "AuditMessage":
        raise SyslogError("XML MSG is not a DICOM <AuditMessage>")

    def find(el: Any, name: str) -> list[Any]:
        return [c for c in el if c.tag.rsplit("}", 1)[-1] == name]

    ident = next(iter(find(root, "EventIdentification")), None)
    if ident is None:
        raise SyslogError("DICOM audit message without EventIdentification")
    event_ids = [e.get("csd-code") or e.get("code") for e in find(ident, "EventID")]
    action = next((_DICOM_ACTION[c] for c in event_ids if c in _DICOM_ACTION), None)
    action = action or _ACTION_CODE.get(ident.get("EventActionCode") or "")
    outcome_code = ident.get("EventOutcomeIndicator")
    row: dict[str, Any] = {
        "ts": ident.get("EventDateTime"),
        "action": action,
        "outcome": None
        if outcome_code is None
        else ("success" if outcome_code == "0" else "denied"),
    }
    purpose = next(iter(find(ident, "PurposeOfUse")), None)
    if purpose is not None:
        row["purpose"] = purpose.get("csd-code") or purpose.get("code")
    parts = find(root, "ActiveParticipant")
    user = next((p for p in parts if (p.get("UserIsRequestor") or "").lower() == "true"), None)
    if user is not None:
        row["account_id"] = user.get("UserID")
        if user.get("NetworkAccessPointTypeCode") in (None, "2"):
            row["client_ip"] = user.get("NetworkAccessPointID")
    device = next((p for p in parts if p is not user), None)
    if device is not None:
        row["device_id"] = device.get("UserID")
        if not row.get("client_ip") and device.get("NetworkAccessPointTypeCode") == "2":
            row["client_ip"] = device.get("NetworkAccessPointID")
    src = next(iter(find(root, "AuditSourceIdentification")), None)
    if src is not None:
        row["source"] = src.get("AuditSourceID")
    patients = []
    for obj in find(root, "ParticipantObjectIdentification"):
        role = obj.get("ParticipantObjectTypeCodeRole")
        if obj.get("ParticipantObjectTypeCode") == "1" and role in (None, "1"):
            patients.append(obj.get("ParticipantObjectID"))
        elif role == "24":
            row["query_id"] = obj.get("ParticipantObjectID")
        for det in find(obj, "ParticipantObjectDetail"):
            key, value = det.get("type"), det.get("value")
            if key in ("fields", "seq", "event_id") and value:
                try:
                    row[key] = base64.b64decode(value, validate=True).decode("utf-8")
                except ValueError:
                    row[key] = value
    if len(set(patients)) > 1:
        raise SyslogError("DICOM audit message names more than one patient; send one per patient")
    row["patient_id"] = patients[0] if patients else None
    return row


__all__ = ["Message", "SyslogError", "dicom_to_row", "message_to_row", "parse_message"]
