"""`phiguard audit export`: FHIR bundles, FHIR NDJSON (round trip), OCSF 6005 and 6003."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from phiguard.app import App
from phiguard.audit.export import export, export_to_file
from phiguard.audit.fhir import audit_event_to_row
from phiguard.audit.ingest import ingest_files
from phiguard.clock import parse_ts
from phiguard.errors import UsageError
from phiguard.settings import Settings
from tests.audit.eventfiles import event, events, stored, write_csv


@pytest.fixture
def loaded(sqlite_app: App, tmp_path: Path) -> App:
    rows = events(5) + [event(6, account_id="vx-eng-07", outcome="denied", client_ip=None)]
    ingest_files(sqlite_app, [write_csv(tmp_path / "e.csv", rows)])
    return sqlite_app


def _lines(app: App, **kw) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    buf = io.StringIO()
    export(app, buf, **kw)
    return [json.loads(x) for x in buf.getvalue().splitlines()]


def test_ocsf_datastore_activity(loaded: App) -> None:
    docs = _lines(loaded, fmt="ocsf")
    assert len(docs) == 6
    first = docs[0]
    assert (first["class_uid"], first["category_uid"], first["activity_id"], first["type_uid"]) == (
        6005,
        6,
        4,
        600504,
    )  # cms-1 is a search: Query
    assert first["actor"]["user"]["uid"] == "dr-1"
    assert first["metadata"]["uid"] == "CMS:cms-1" and first["metadata"]["sequence"] == 1
    assert first["time"] == int(parse_ts("2026-04-03T01:01:00+08:00").timestamp() * 1000)
    assert first["unmapped"]["patient_id"] == "P0000001"
    assert docs[4]["activity_name"] == "Read" and docs[4]["type_uid"] == 600501
    assert docs[1]["activity_name"] == "Print" and docs[1]["activity_id"] == 99
    denied = docs[5]
    assert denied["status_id"] == 2 and denied["status"] == "Failure"
    assert denied["src_endpoint"] == {"uid": "ws-1"}


def test_ocsf_api_activity_and_filters(loaded: App) -> None:
    docs = _lines(loaded, fmt="ocsf", ocsf_class="api", account="vx-eng-07")
    assert len(docs) == 1
    (doc,) = docs
    assert doc["class_uid"] == 6003 and doc["api"]["operation"] == "search"
    assert doc["resources"] == [{"uid": "P0000006", "type": "Patient"}]
    since = _lines(loaded, fmt="ocsf", since=parse_ts("2026-04-03T01:04:00+08:00"))
    assert [d["metadata"]["sequence"] for d in since] == [4, 5, 6]


def test_fhir_bundles(loaded: App) -> None:
    bundles = _lines(loaded, fmt="fhir", bundle_size=4)
    assert [b["total"] for b in bundles] == [4, 2]
    assert all(b["resourceType"] == "Bundle" and b["type"] == "collection" for b in bundles)
    rows = [audit_event_to_row(e["resource"]) for b in bundles for e in b["entry"]]
    assert [r["event_id"] for r in rows] == [f"cms-{i}" for i in range(1, 7)]
    assert len({e["fullUrl"] for b in bundles for e in b["entry"]}) == 6


def test_fhir_ndjson_round_trips_into_another_home(loaded: App, tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "export.ndjson"
    result = export_to_file(loaded, out, fmt="fhir-ndjson")
    assert result.events == 6
    with pytest.raises(UsageError, match="exists"):
        export_to_file(loaded, out, fmt="fhir-ndjson")
    other = App.init(Settings(home=tmp_path / "other"), clock=clock)
    try:
        ingest_files(other, [out])
        strip = lambda rows: [{k: v for k, v in r.items() if k != "leaf_index"} for r in rows]  # noqa: E731
        assert strip(stored(other)) == strip(stored(loaded))
    finally:
        other.close()


def test_exports_are_recorded_and_bad_options_refused(loaded: App) -> None:
    _lines(loaded, fmt="ocsf")
    tags = [
        json.loads(e.data).get("tag")
        for e in loaded.audit.records()
        if e.kind == "action" and e.data.startswith(b"{")
    ]
    assert "audit:log:exported" in tags
    with pytest.raises(UsageError):
        _lines(loaded, fmt="csv")
    with pytest.raises(UsageError):
        _lines(loaded, fmt="ocsf", ocsf_class="file")


def test_cli_export(sqlite_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sqlite_cli("init")
    sqlite_cli("ingest", str(write_csv(tmp_path / "c.csv", events(3))))
    res = sqlite_cli("audit", "export", "--format", "ocsf", "--ocsf-class", "api")
    assert res.exit_code == 0
    assert [json.loads(x)["class_uid"] for x in res.stdout.splitlines()] == [6003] * 3
    out = tmp_path / "b.ndjson"
    res = sqlite_cli("audit", "export", "--format", "fhir", "-o", str(out))
    assert res.exit_code == 0 and json.loads(out.read_text())["total"] == 3
    assert sqlite_cli("audit", "export", "--format", "ocsf", "--since", "yesterday").exit_code == 2
