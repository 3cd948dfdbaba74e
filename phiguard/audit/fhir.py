"""FHIR R4 ``AuditEvent`` in the IHE BALP style ⇄ the access-event columns of spec §1.6.

Reading (:func:`audit_event_to_row`) follows the IHE Basic Audit Log Patterns:

=============  ===========================================================================
column         where it is found
=============  ===========================================================================
event_id       extension :data:`EXT_EVENT_ID` (when the source's id is not a valid FHIR
               id), else ``AuditEvent.id``
source         ``source.observer``: identifier.value, else display, else the reference's id
seq            extension :data:`EXT_SEQ` (valueInteger / valueString / valueDecimal …):
               BALP has no sequence number and phiguard needs one to prove completeness
ts             ``recorded``
account_id     the agent with ``requestor = true``: who.identifier.value, else the id of
               who.reference, else who.display
action         a ``subtype`` coding of :data:`ACTION_SYSTEM` if present (exact round trip);
               else restful-interaction read/vread/history → read, search* → search,
               create/update/patch/delete → update, DICOM 110106 (Export) → export; else
               the ``action`` code: R → read, E → search, C/U/D → update
patient_id     the entity whose role is 1 (Patient) or whose what.reference is Patient/…;
               BALP wants one AuditEvent per patient, so two patients are an error
fields         ``entity.detail`` with type ``fields`` (valueString), or extension
               :data:`EXT_FIELDS`
query_id       the entity whose role is 24 (Query): what.identifier.value
client_ip      the requestor's network.address, else the first other agent with an IP
device_id      the first non-requestor agent that is not the observer: its who.identifier
               .value or who.display
purpose        the requestor's ``purposeOfUse`` code, else ``purposeOfEvent``
outcome        ``outcome`` 0 → success; 4, 8, 12 (failures) → denied
=============  ===========================================================================

Writing (:func:`row_to_audit_event`) produces the same shape, so a row survives the round
trip unchanged.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

EXT_SEQ = "urn:phiguard:fhir:StructureDefinition:source-seq"
EXT_EVENT_ID = "urn:phiguard:fhir:StructureDefinition:event-id"
EXT_FIELDS = "urn:phiguard:fhir:StructureDefinition:fields"
ACTION_SYSTEM = "urn:phiguard:fhir:CodeSystem:access-action"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
NETWORK_TYPE = "http://hl7.org/fhir/network-type"
BALP_PROFILE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit"

_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_RESTFUL_ACTION = {
    "read": "read",
    "vread": "read",
    "history-instance": "read",
    "history-type": "read",
    "history": "read",
    "history-system": "read",
    "search": "search",
    "search-type": "search",
    "search-system": "search",
    "search-compartment": "search",
    "create": "update",
    "update": "update",
    "patch": "update",
    "delete": "update",
}
_ACTION_CODE = {"R": "read", "E": "search", "C": "update", "U": "update", "D": "update"}
_ACTION_LETTER = {"read": "R", "search": "E", "print": "R", "export": "R", "update": "U"}
_RESTFUL_OF = {"read": "read", "search": "search", "update": "update"}


class FhirError(ValueError):
    """The resource is not an AuditEvent phiguard can map; the message says why."""


def _ref_id(ref: Any) -> str | None:
    if isinstance(ref, str) and ref:
        return ref.rstrip("/").rsplit("/", 1)[-1]
    return None


def _who(who: Any) -> str | None:
    if not isinstance(who, dict):
        return None
    ident = who.get("identifier")
    if isinstance(ident, dict) and isinstance(ident.get("value"), str) and ident["value"]:
        return str(ident["value"])
    return _ref_id(who.get("reference")) or (who.get("display") or None)


def _codes(concept: Any) -> list[tuple[str | None, str]]:
    """(system, code) pairs of a Coding, a CodeableConcept, or a list of either."""
    out: list[tuple[str | None, str]] = []
    items = concept if isinstance(concept, list) else [concept]
    for item in items:
        if not isinstance(item, dict):
            continue
        if "coding" in item and isinstance(item["coding"], list):
            out.extend(_codes(item["coding"]))
        elif isinstance(item.get("code"), str):
            out.append((item.get("system"), item["code"]))
    return out


def _extension(obj: dict[str, Any], url: str) -> Any:
    for ext in obj.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            for key, value in ext.items():
                if key.startswith("value"):
                    return value
    return None


def audit_event_to_row(obj: Any) -> dict[str, str | None]:
    """Map one AuditEvent (parsed JSON) to spec §1.6 columns as strings; raises FhirError."""
    if not isinstance(obj, dict):
        raise FhirError("not a JSON object")
    if obj.get("resourceType") != "AuditEvent":
        raise FhirError(f"resourceType is {obj.get('resourceType')!r}, expected 'AuditEvent'")
    event_id = _extension(obj, EXT_EVENT_ID) or obj.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise FhirError("no id")
    seq = _extension(obj, EXT_SEQ)
    if seq is None:
        raise FhirError(f"no source sequence number (extension {EXT_SEQ})")
    if isinstance(seq, bool) or not isinstance(seq, (int, float, str)):
        raise FhirError("the sequence number is not a number")
    if isinstance(seq, float):
        if not seq.is_integer():
            raise FhirError("the sequence number is not a whole number")
        seq = int(seq)
    recorded = obj.get("recorded")
    if not isinstance(recorded, str):
        raise FhirError("no 'recorded' time")

    source = obj.get("source")
    if not isinstance(source, dict):
        raise FhirError("no 'source'")
    observer = source.get("observer")
    source_id = _who(observer)
    if not source_id:
        raise FhirError("source.observer names no system")
    observer_ref = observer.get("reference") if isinstance(observer, dict) else None

    agents = [a for a in obj.get("agent") or [] if isinstance(a, dict)]
    if not agents:
        raise FhirError("no agent")
    requestors = [a for a in agents if a.get("requestor") is True]
    if not requestors:
        raise FhirError("no agent with requestor = true (the user)")
    user = requestors[0]
    account = _who(user.get("who"))
    if not account:
        raise FhirError("the requesting agent has no identifier")

    action = _action(obj)
    patients: list[str] = []
    query_id: str | None = None
    fields: str | None = _extension(obj, EXT_FIELDS)
    for ent in obj.get("entity") or []:
        if not isinstance(ent, dict):
            continue
        what_raw = ent.get("what")
        what: dict[str, Any] = what_raw if isinstance(what_raw, dict) else {}
        roles = {c for _, c in _codes(ent.get("role"))}
        ref_raw = what.get("reference")
        ref = ref_raw if isinstance(ref_raw, str) else ""
        if "1" in roles or ref.startswith("Patient/") or what.get("type") == "Patient":
            pid = _who(what)
            if pid:
                patients.append(pid)
        elif "24" in roles and query_id is None:
            query_id = _who(what) or (ent.get("name") if isinstance(ent.get("name"), str) else None)
        for det in ent.get("detail") or []:
            if isinstance(det, dict) and det.get("type") == "fields" and fields is None:
                val = det.get("valueString")
                fields = val if isinstance(val, str) else None
    if len(set(patients)) > 1:
        raise FhirError("names more than one patient (IHE BALP: one AuditEvent per patient)")

    client_ip, device_id = _network(user, agents, observer_ref)
    purpose = next((c for _, c in _codes(user.get("purposeOfUse"))), None)
    if purpose is None:
        purpose = next((c for _, c in _codes(obj.get("purposeOfEvent"))), None)
    outcome_raw = obj.get("outcome")
    if outcome_raw is None:
        raise FhirError("no outcome")
    outcome = (
        "success"
        if str(outcome_raw) == "0"
        else ("denied" if str(outcome_raw) in {"4", "8", "12"} else None)
    )
    if outcome is None:
        raise FhirError("outcome must be 0, 4, 8 or 12")
    return {
        "event_id": event_id,
        "source": source_id,
        "seq": str(seq),
        "ts": recorded,
        "account_id": account,
        "action": action,
        "patient_id": patients[0] if patients else None,
        "fields": fields,
        "query_id": query_id,
        "client_ip": client_ip,
        "device_id": device_id,
        "purpose": purpose,
        "outcome": outcome,
    }


def _action(obj: dict[str, Any]) -> str:
    subtype = _codes(obj.get("subtype"))
    for system, code in subtype:
        if system == ACTION_SYSTEM:
            return code
    for system, code in subtype:
        if system in (RESTFUL, None) and code in _RESTFUL_ACTION:
            return _RESTFUL_ACTION[code]
    for system, code in [*_codes(obj.get("type")), *subtype]:
        if system == DCM and code == "110106":
            return "export"
    action_code = obj.get("action")
    if isinstance(action_code, str) and action_code in _ACTION_CODE:
        return _ACTION_CODE[action_code]
    raise FhirError("cannot tell the action (no known subtype and no action code)")


def _network(
    user: dict[str, Any], agents: list[dict[str, Any]], observer_ref: Any
) -> tuple[str | None, str | None]:
    def address(agent: dict[str, Any]) -> str | None:
        net = agent.get("network")
        if (
            isinstance(net, dict)
            and isinstance(net.get("address"), str)
            and (str(net.get("type", "2")) == "2" or _IPV4.match(net["address"]))
        ):
            return str(net["address"])
        return None

    others = [
        a
        for a in agents
        if a is not user
        and not (
            isinstance(a.get("who"), dict)
            and observer_ref
            and a["who"].get("reference") == observer_ref
        )
    ]
    ip = address(user) or next((address(a) for a in others if address(a)), None)
    device = next((_who(a.get("who")) for a in others if _who(a.get("who"))), None)
    return ip, device


def row_to_audit_event(row: dict[str, Any]) -> dict[str, Any]:
    """One event row (typed or string columns) as a BALP-style AuditEvent resource."""
    event_id = str(row["event_id"])
    action = str(row["action"])
    ts = row["ts"]
    recorded = ts.isoformat() if isinstance(ts, datetime) else str(ts)
    seq = int(row["seq"])
    extensions: list[dict[str, Any]] = [
        {"url": EXT_SEQ, **({"valueInteger": seq} if seq < 2**31 else {"valueString": str(seq)})}
    ]
    resource: dict[str, Any] = {"resourceType": "AuditEvent"}
    if _FHIR_ID.match(event_id):
        resource["id"] = event_id
    else:
        extensions.append({"url": EXT_EVENT_ID, "valueString": event_id})
    resource["meta"] = {
        "profile": [
            BALP_PROFILE
            + (
                ".PatientRead"
                if action == "read" and row.get("patient_id")
                else ".PatientQuery"
                if action == "search" and row.get("patient_id")
                else ""
            )
        ]
    }
    resource["extension"] = extensions
    subtype = [{"system": ACTION_SYSTEM, "code": action}]
    if action in _RESTFUL_OF:
        subtype.insert(0, {"system": RESTFUL, "code": _RESTFUL_OF[action]})
    if action == "export":
        subtype.insert(0, {"system": DCM, "code": "110106", "display": "Export"})
    resource.update(
        {
            "type": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
            "subtype": subtype,
            "action": _ACTION_LETTER.get(action, "R"),
            "recorded": recorded,
            "outcome": "0" if row["outcome"] == "success" else "4",
            "source": {
                "observer": {
                    "identifier": {"value": str(row["source"])},
                    "display": str(row["source"]),
                },
                "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
            },
        }
    )
    user: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}
            ]
        },
        "who": {"identifier": {"value": str(row["account_id"])}},
        "requestor": True,
    }
    if row.get("purpose"):
        user["purposeOfUse"] = [{"coding": [{"system": ACT_REASON, "code": str(row["purpose"])}]}]
    agents = [user]
    if row.get("client_ip") or row.get("device_id"):
        client: dict[str, Any] = {
            "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
            "requestor": False,
        }
        if row.get("device_id"):  # agent.who is optional in R4
            client["who"] = {"identifier": {"value": str(row["device_id"])}}
        if row.get("client_ip"):
            client["network"] = {"address": str(row["client_ip"]), "type": "2"}
        agents.append(client)
    resource["agent"] = agents
    entities: list[dict[str, Any]] = []
    fields_detail = (
        [{"type": "fields", "valueString": str(row["fields"])}] if row.get("fields") else []
    )
    if row.get("patient_id"):
        entities.append(
            {
                "what": _patient_ref(str(row["patient_id"])),
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
                **({"detail": fields_detail} if fields_detail else {}),
            }
        )
        fields_detail = []
    if row.get("query_id"):
        entities.append(
            {
                "what": {"identifier": {"value": str(row["query_id"])}},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                **({"detail": fields_detail} if fields_detail else {}),
            }
        )
        fields_detail = []
    if fields_detail:
        extensions.append({"url": EXT_FIELDS, "valueString": str(row["fields"])})
    if entities:
        resource["entity"] = entities
    return resource


def _patient_ref(pid: str) -> dict[str, Any]:
    """A Patient reference; the identifier carries the id exactly, whatever its characters."""
    ref: dict[str, Any] = {"identifier": {"value": pid}}
    if _FHIR_ID.match(pid):
        ref = {"reference": f"Patient/{pid}", **ref}
    else:
        ref["type"] = "Patient"
    return ref


def bundle(
    resources: list[dict[str, Any]], *, bundle_id: str | None = None, timestamp: str | None = None
) -> dict[str, Any]:
    """A FHIR ``collection`` Bundle of AuditEvents (for SIEM export)."""
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "collection"}
    if bundle_id:
        out["id"] = bundle_id
    if timestamp:
        out["timestamp"] = timestamp
    out["total"] = len(resources)
    out["entry"] = [{"fullUrl": f"urn:uuid:{_uuid_for(r)}", "resource": r} for r in resources]
    return out


def _uuid_for(resource: dict[str, Any]) -> str:
    import hashlib
    import uuid

    key = resource.get("id") or _extension(resource, EXT_EVENT_ID) or repr(resource)
    seq = _extension(resource, EXT_SEQ)
    src = resource.get("source", {}).get("observer", {}).get("display", "")
    digest = hashlib.sha256(f"{src}\x00{key}\x00{seq}".encode()).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=5))


__all__ = [
    "EXT_EVENT_ID",
    "EXT_FIELDS",
    "EXT_SEQ",
    "FhirError",
    "audit_event_to_row",
    "bundle",
    "row_to_audit_event",
]
