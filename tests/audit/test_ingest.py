"""`phiguard ingest`: formats, exact-bytes sealing, bad input, strict mode, batches, resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from phiguard.app import App
from phiguard.audit.ingest import BATCH_MAGIC, _chunks, ingest_body, ingest_file, ingest_files
from phiguard.audit.verify import verify_log
from phiguard.errors import InputError, UsageError
from tests.audit.eventfiles import (
    HEADER,
    bundle_bytes,
    csv_line,
    event,
    events,
    stored,
    write_csv,
    write_fhir,
    write_ndjson,
    write_parquet,
)


def _entries(app: App) -> dict[int, bytes]:
    return dict(app.audit.entries(0, app.audit.size))


def test_csv_rows_are_sealed_byte_for_byte_and_stored(sqlite_app: App, tmp_path: Path) -> None:
    rows = events(20)
    path = write_csv(tmp_path / "cms.csv", rows)
    result = ingest_files(sqlite_app, [path])
    assert (result.accepted, result.rejected) == (20, 0)
    lines = path.read_bytes().split(b"\n")[1:21]
    entries = _entries(sqlite_app)
    got = stored(sqlite_app)
    assert [r["event_id"] for r in got] == [r["event_id"] for r in rows]
    for row, line in zip(got, lines, strict=True):
        assert entries[row["leaf_index"]] == line  # the exact bytes received
    header = entries[result.files[0].batches[0][0]]
    assert header.startswith(BATCH_MAGIC)
    meta = json.loads(header[len(BATCH_MAGIC) :])
    assert meta["header"] == HEADER and meta["count"] == 20 and meta["source"] == "CMS"
    assert meta["sha256"] == result.files[0].sha256
    assert verify_log(sqlite_app.audit).ok


def test_every_kind_of_bad_row_is_reported_with_its_line(sqlite_app: App, tmp_path: Path) -> None:
    good = events(3)
    path = tmp_path / "bad.csv"
    body = [HEADER.encode(), *[csv_line(r).encode() for r in good]]
    body += [
        b"cms-10,CMS,10,2026-04-03T01:00:00+08:00,dr-1,read",  # line 5: too few fields
        csv_line(event(11, seq="eleven")).encode(),  # 6
        csv_line(event(12, ts="yesterday")).encode(),  # 7
        csv_line(event(13, action="delete")).encode(),  # 8
        csv_line(event(14, account_id="")).encode(),  # 9
        csv_line(event(15, device_id="caf\xe9")).encode("latin-1"),  # 10: wrong encoding
        csv_line(event(16, fields="x" * 70_000)).encode(),  # 11: oversized
        csv_line(event(17, outcome="maybe")).encode(),  # 12
        csv_line(event(18, source="C M S")).encode(),  # 13
        csv_line(event(19, ts="2026-13-40T01:00:00+08:00")).encode(),  # 14: impossible date
        csv_line(event(4)).encode(),  # 15: fine again
    ]
    path.write_bytes(b"\n".join(body) + b"\n")
    res, _ = ingest_file(sqlite_app, path)
    reasons = {e.line: e.reason for e in res.errors}
    assert res.accepted == 4 and res.rejected == 10
    assert "fields, the header has 13" in reasons[5]
    assert reasons[6].startswith("seq is not a whole number")
    assert reasons[7].startswith("ts is not an ISO-8601")
    assert reasons[8].startswith("action must be one of")
    assert reasons[9] == "account_id is missing or empty"
    assert "UTF-8" in reasons[10]
    assert "longer than the limit" in reasons[11]
    assert reasons[12] == "outcome must be success or denied"
    assert reasons[13].startswith("source may hold only")
    assert reasons[14].startswith("ts is not an ISO-8601")
    assert [r["event_id"] for r in stored(sqlite_app)] == ["cms-1", "cms-2", "cms-3", "cms-4"]
    # no reason repeats the offending value (it could be an identifier in the wrong column)
    assert not any("eleven" in r or "yesterday" in r for r in reasons.values())


def test_a_stray_quote_costs_one_row_and_a_truncated_file_its_last(
    sqlite_app: App, tmp_path: Path
) -> None:
    lines = [csv_line(r) for r in events(5)]
    lines[1] = lines[1].replace("dr-2", '"dr-2')  # line 3 opens a quote that never closes
    path = tmp_path / "quotes.csv"
    path.write_text(HEADER + "\n" + "\n".join(lines) + '\ncms-9,CMS,9,"2026-04-03T01:0')
    res, _ = ingest_file(sqlite_app, path)
    assert res.accepted == 4
    assert {e.line for e in res.errors} == {3, 7}
    assert any("not closed at the end of the file" in e.reason for e in res.errors)


def test_extra_columns_are_kept_in_the_sealed_bytes_and_ignored(
    sqlite_app: App, tmp_path: Path
) -> None:
    path = tmp_path / "extra.csv"
    cols = ("ward", *events(1)[0].keys())
    write_csv(path, [{**r, "ward": "7B"} for r in events(2)], columns=cols)  # type: ignore[arg-type]
    ingest_files(sqlite_app, [path])
    row = stored(sqlite_app)[0]
    assert "ward" not in row
    assert _entries(sqlite_app)[row["leaf_index"]].startswith(b"7B,cms-1,CMS,1,")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (
            b"event_id,source,seq,ts,account_id,action\ncms-1,CMS,1,2026-04-03T01:00:00,a,read\n",
            "missing column(s): outcome",
        ),
        ("event_id,source\n".encode("utf-16"), "UTF-16"),
        (b"event_id,source,source,seq\n", "twice"),
        (HEADER.encode() + b"\n", "no events"),
    ],
)
def test_unreadable_files_are_refused_whole(
    sqlite_app: App, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    before = sqlite_app.audit.size
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ingest_files(sqlite_app, [path])
    assert sqlite_app.audit.size == before


def test_strict_rejects_the_whole_file_and_leaves_no_trace(sqlite_app: App, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", events(5), extra_lines=[csv_line(event(6, seq="x"))])
    before = sqlite_app.audit.size
    result = ingest_files(sqlite_app, [path], strict=True)
    assert not result.committed and result.accepted == 0 and result.rejected == 1
    assert sqlite_app.audit.size == before
    assert stored(sqlite_app) == []
    ok = write_csv(tmp_path / "ok.csv", events(5))
    assert ingest_files(sqlite_app, [ok], strict=True).accepted == 5


@pytest.mark.parametrize("writer", [write_ndjson, write_parquet, write_fhir])
def test_other_formats_store_the_same_rows_as_csv(tmp_path: Path, clock, writer) -> None:  # type: ignore[no-untyped-def]
    from phiguard.settings import Settings

    rows = events(12) + events(3, source="ePR")
    results = []
    for name, write in (
        ("a.csv", write_csv),
        (
            "b"
            + {"write_ndjson": ".ndjson", "write_parquet": ".parquet", "write_fhir": ".ndjson"}[
                writer.__name__
            ],
            writer,
        ),
    ):
        app = App.init(Settings(home=tmp_path / f"home-{name}"), clock=clock)
        try:
            ingest_files(app, [write(tmp_path / name, rows)])
            results.append([{k: v for k, v in r.items() if k != "leaf_index"} for r in stored(app)])
        finally:
            app.close()
    key = lambda r: (r["source"], r["seq"])  # noqa: E731 - batches are per source
    assert sorted(results[0], key=key) == sorted(results[1], key=key)


def test_ndjson_accepts_numbers_and_reports_bad_json(sqlite_app: App, tmp_path: Path) -> None:
    path = tmp_path / "e.ndjson"
    path.write_text(
        json.dumps(event(1))
        + "\n{not json\n[1,2]\n"
        + json.dumps({**event(2), "seq": {"n": 2}})
        + "\n"
        + json.dumps(event(3))
        + "\n"
    )
    res, _ = ingest_file(sqlite_app, path)
    assert res.accepted == 2
    assert [(e.line, e.reason.split(" (")[0]) for e in res.errors] == [
        (2, "not valid JSON"),
        (3, "not a JSON object"),
        (4, "seq must be a string"),
    ]


def test_gzip_and_parquet_headers_carry_the_file_digest(sqlite_app: App, tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "x.csv", events(4))
    gz = tmp_path / "y.csv.gz"
    gz.write_bytes(gzip.compress(write_csv(tmp_path / "y.csv", events(4, start=5)).read_bytes()))
    pq_path = write_parquet(tmp_path / "z.parquet", events(4, start=9))
    result = ingest_files(sqlite_app, [plain, gz, pq_path])
    assert result.accepted == 12
    entries = _entries(sqlite_app)
    meta = json.loads(entries[result.files[2].batches[0][0]][len(BATCH_MAGIC) :])
    assert meta["origin"] == "parquet" and meta["sha256"] == result.files[2].sha256
    assert [r["seq"] for r in stored(sqlite_app)] == list(range(1, 13))


def test_truncated_gzip_is_an_input_error(sqlite_app: App, tmp_path: Path) -> None:
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(write_csv(tmp_path / "t.csv", events(50)).read_bytes())[:-30])
    with pytest.raises(InputError, match="truncated"):
        ingest_files(sqlite_app, [gz])


def test_reingesting_a_file_skips_what_is_sealed_and_force_seals_again(
    sqlite_app: App, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "again.csv", events(6))
    ingest_files(sqlite_app, [path])
    again = ingest_files(sqlite_app, [path])
    assert again.accepted == 0 and again.files[0].already == 6
    forced = ingest_files(sqlite_app, [path], force=True)
    assert forced.accepted == 6
    assert [(a.kind, a.first_seq, a.last_seq) for a in forced.anomalies] == [("duplicate", 1, 6)]


def test_a_big_file_is_sealed_in_batches_and_an_interrupted_run_resumes(
    sqlite_app: App, tmp_path: Path
) -> None:
    from phiguard.audit.ingest import FileResult, _sha256, ingest_chunks

    path = write_csv(tmp_path / "big.csv", events(10))
    # an earlier run that died after sealing its first two chunks of 3 events
    partial = FileResult(name=path.name, format="csv", sha256=_sha256(path))
    chunks = _chunks(path, "csv", 3)
    first_two = [next(chunks), next(chunks)]
    ingest_chunks(sqlite_app, first_two, partial, channel="file", actor="test")
    assert partial.accepted == 6
    res, found = ingest_file(sqlite_app, path, batch_events=3)
    assert (res.already, res.accepted, len(res.batches)) == (6, 4, 2)
    assert found == []  # nothing duplicated, nothing missing
    assert [r["seq"] for r in stored(sqlite_app)] == list(range(1, 11))


def test_ingest_body_ndjson_bundle_and_csv(sqlite_app: App) -> None:
    nd = b"".join(json.dumps(r).encode() + b"\n" for r in events(3))
    assert ingest_body(sqlite_app, nd, "application/x-ndjson").accepted == 3
    body = bundle_bytes(events(2, start=4))
    res = ingest_body(sqlite_app, body, "application/fhir+json; charset=utf-8", peer="10.0.0.9")
    assert res.accepted == 2
    # the resources' own bytes, sliced from the Bundle, are what was sealed
    entries = _entries(sqlite_app)
    rows = stored(sqlite_app)
    sealed = entries[rows[3]["leaf_index"]]
    assert sealed in body and json.loads(sealed)["resourceType"] == "AuditEvent"
    csv = (HEADER + "\n" + csv_line(event(6)) + "\n").encode()
    assert ingest_body(sqlite_app, csv, "text/csv").accepted == 1
    assert [r["seq"] for r in stored(sqlite_app)] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(UsageError, match="unsupported content type"):
        ingest_body(sqlite_app, nd, "application/xml")
    with pytest.raises(InputError, match="not valid JSON"):
        ingest_body(sqlite_app, b"{", "application/fhir+json")


def test_ingest_is_recorded_in_the_log(sqlite_app: App, tmp_path: Path) -> None:
    ingest_files(sqlite_app, [write_csv(tmp_path / "r.csv", events(2))])
    actions = [
        json.loads(e.data)
        for e in sqlite_app.audit.records()
        if e.kind == "action" and e.data.startswith(b"{")
    ]
    done = [a for a in actions if a.get("tag") == "audit:events:ingested"]
    assert len(done) == 1 and done[0]["detail"]["events"] == 2


# -- through the command line ---------------------------------------------------------------
def test_cli_ingest_reports_counts_lines_and_gaps(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").exit_code == 0
    rows = events(3) + [event(7)]
    path = write_csv(tmp_path / "cli.csv", rows, extra_lines=[csv_line(event(8, action="x"))])
    res = cli("ingest", str(path))
    assert res.exit_code == 0, res.output
    assert "5 records, 4 accepted, 1 rejected" in res.output
    assert "line 6: action must be one of" in res.output
    assert "CMS: 3 event(s) missing (seq 4–6)" in res.output
    js = cli("ingest", "--format", "json", str(write_csv(tmp_path / "j.csv", events(1, start=8))))
    doc = json.loads(js.stdout)
    assert doc["accepted"] == 1 and doc["files"][0]["batches"][0]["events"] == 1


def test_cli_exit_codes(sqlite_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert sqlite_cli("init").exit_code == 0
    missing = sqlite_cli("ingest", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad = tmp_path / "bad.xlsx"
    bad.write_text("x")
    assert sqlite_cli("ingest", str(bad)).exit_code == 2
    strict = write_csv(tmp_path / "st.csv", events(2), extra_lines=["cms-3,CMS"])
    res = sqlite_cli("ingest", "--strict", str(strict))
    assert res.exit_code == 1 and "NOT ingested" in res.output


def test_a_source_name_longer_than_the_tables_allow_is_a_bad_row(sqlite_app, tmp_path):  # type: ignore[no-untyped-def]
    from phiguard.audit.ingest import ingest_files
    from tests.factories import EVENT_HEADER, write_csv

    row = {
        "event_id": "e1",
        "source": "S" * 65,
        "seq": "1",
        "ts": "2026-04-02T10:00:00+08:00",
        "account_id": "a",
        "action": "read",
        "patient_id": "P1",
        "fields": "name",
        "query_id": "",
        "client_ip": "",
        "device_id": "",
        "purpose": "",
        "outcome": "success",
    }
    ok = dict(row, event_id="e2", source="CMS")
    result = ingest_files(sqlite_app, [write_csv(tmp_path / "e.csv", [row, ok], EVENT_HEADER)])
    assert (result.accepted, result.rejected) == (1, 1)
    assert "source is longer than 64 bytes" in json.dumps(result.as_dict())
