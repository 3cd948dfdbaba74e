"""FHIR R4 AuditEvent (IHE BALP) ⇄ event columns."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phiguard.app import App
from phiguard.audit.fhir import EXT_SEQ, FhirError, audit_event_to_row, row_to_audit_event
from phiguard.audit.ingest import ingest_files
from tests.audit.eventfiles import bundle_bytes, event, events, stored, write_fhir

# Shaped like the BALP "basic patient identifiable read" example (ex-auditBasicReadServer),
# with the sequence-number extension phiguard needs.
BALP_READ = {
    "resourceType": "AuditEvent",
    "id": "ex-auditBasicReadServer",
    "extension": [{"url": EXT_SEQ, "valueInteger": 42}],
    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
    "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}],
    "action": "R",
    "recorded": "2020-04-29T09:49:00.000Z",
    "outcome": "0",
    "source": {
        "site": "server.example.com",
        "observer": {"reference": "Device/ex-device"},
        "type": [
            {"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}
        ],
    },
    "agent": [
        {
            "type": {
                "coding": [
                    {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153"}
                ]
            },
            "requestor": False,
            "who": {"reference": "Device/ex-device"},
            "network": {"address": "http://server.example.com/fhir", "type": "5"},
        },
        {
            "type": {
                "coding": [
                    {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152"}
                ]
            },
            "requestor": False,
            "who": {"display": "myMachine.example.org"},
            "network": {"address": "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "type": "2"},
        },
        {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "IRCP",
                    }
                ]
            },
            "who": {"identifier": {"value": "dr-chan"}, "display": "John Smith"},
            "requestor": True,
            "purposeOfUse": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                            "code": "TREAT",
                        }
                    ]
                }
            ],
        },
    ],
    "entity": [
        {"type": {"code": "1"}, "role": {"code": "1"}, "what": {"reference": "Patient/ex-patient"}},
        {"type": {"code": "2"}, "role": {"code": "4"}, "what": {"reference": "List/ex-list"}},
    ],
}


def test_a_balp_read_maps_onto_the_columns() -> None:
    row = audit_event_to_row(BALP_READ)
    assert row == {
        "event_id": "ex-auditBasicReadServer",
        "source": "ex-device",
        "seq": "42",
        "ts": "2020-04-29T09:49:00.000Z",
        "account_id": "dr-chan",
        "action": "read",
        "patient_id": "ex-patient",
        "fields": None,
        "query_id": None,
        "client_ip": "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "device_id": "myMachine.example.org",
        "purpose": "TREAT",
        "outcome": "success",
    }


def test_a_balp_query_is_a_search_with_its_query_id() -> None:
    q = copy.deepcopy(BALP_READ)
    q["action"] = "E"
    q["subtype"] = [{"system": "http://hl7.org/fhir/restful-interaction", "code": "search-type"}]
    q["entity"].append({"role": {"code": "24"}, "what": {"identifier": {"value": "q-88812"}}})
    row = audit_event_to_row(q)
    assert row["action"] == "search" and row["query_id"] == "q-88812"


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda r: r.update(resourceType="Patient"), "expected 'AuditEvent'"),
        (lambda r: r.pop("extension"), "no source sequence number"),
        (
            lambda r: r.update(extension=[{"url": EXT_SEQ, "valueDecimal": 1.5}]),
            "not a whole number",
        ),
        (lambda r: r.pop("recorded"), "no 'recorded' time"),
        (lambda r: r["agent"].pop(), "no agent with requestor = true"),
        (
            lambda r: r["entity"].append(
                {"role": {"code": "1"}, "what": {"reference": "Patient/other"}}
            ),
            "more than one patient",
        ),
        (lambda r: r.update(outcome="3"), "outcome must be"),
        (lambda r: (r.pop("subtype"), r.update(action="X")), "cannot tell the action"),
        (lambda r: r["source"].pop("observer"), "names no system"),
    ],
)
def test_invalid_resources_are_refused_with_a_reason(change, reason) -> None:  # type: ignore[no-untyped-def]
    bad = copy.deepcopy(BALP_READ)
    change(bad)
    with pytest.raises(FhirError, match=reason):
        audit_event_to_row(bad)


_text = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x7E, blacklist_characters='"\\'),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(
    action=st.sampled_from(["read", "search", "print", "export", "update"]),
    outcome=st.sampled_from(["success", "denied"]),
    seq=st.integers(0, 10**15),
    event_id=_text,
    optional=st.fixed_dictionaries(
        {},
        optional={
            "patient_id": _text,
            "fields": _text,
            "query_id": _text,
            "client_ip": _text,
            "device_id": _text,
            "purpose": _text,
        },
    ),
)
def test_row_to_audit_event_and_back_is_exact(action, outcome, seq, event_id, optional) -> None:  # type: ignore[no-untyped-def]
    row = {
        "event_id": event_id,
        "source": "CMS",
        "seq": str(seq),
        "ts": "2026-04-03T01:12:00+08:00",
        "account_id": "vx-eng-07",
        "action": action,
        "outcome": outcome,
        "patient_id": None,
        "fields": None,
        "query_id": None,
        "client_ip": None,
        "device_id": None,
        "purpose": None,
        **optional,
    }
    resource = json.loads(json.dumps(row_to_audit_event(row)))
    assert audit_event_to_row(resource) == row


def test_fhir_ndjson_and_bundle_files_ingest(sqlite_app: App, tmp_path: Path) -> None:
    nd = write_fhir(tmp_path / "audit.ndjson", events(4))
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(bundle_bytes(events(3, start=5)))
    bad = tmp_path / "bad.ndjson"
    good_line = json.dumps(row_to_audit_event(event(8)))
    bad.write_text(good_line + "\n" + json.dumps({"resourceType": "AuditEvent", "id": "x"}) + "\n")
    result = ingest_files(sqlite_app, [nd, bundle, bad])
    assert [f.format for f in result.files] == ["fhir", "bundle", "fhir"]
    assert result.accepted == 8 and result.rejected == 1
    assert result.files[2].errors[0].line == 2
    assert (
        result.files[2].errors[0].reason.startswith("invalid FHIR AuditEvent: no source sequence")
    )
    assert [r["seq"] for r in stored(sqlite_app)] == list(range(1, 9))
