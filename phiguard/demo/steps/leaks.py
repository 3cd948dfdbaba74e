"""Chapter: the dump surfaces on a third-party platform; phiguard says whose data it is, what
leaked and which export it came from — in seconds."""

from __future__ import annotations

import importlib
import time
from typing import Any

from phiguard.demo.story import Story


def _ensure_events(story: Story) -> None:
    """Attribution reads the access events; ingest them if no earlier chapter did."""
    events = story.data / "events.parquet"
    if story.state.get("ingested") or not events.exists():
        return
    try:
        ingest = importlib.import_module("phiguard.audit.ingest")
    except ModuleNotFoundError:
        return
    ingest.ingest_files(story.app, [events], actor="demo")
    story.state["ingested"] = True


def _quality(result: dict[str, Any], label: dict[str, Any]) -> str:
    truth = set(label.get("patient_ids") or [])
    found = {p["patient_id"] for p in result["affected_patients"]}
    if not truth:
        return ""
    tp = len(found & truth)
    precision = tp / len(found) if found else 0.0
    recall = tp / len(truth)
    return (
        f"  checked against the generator's labels: {tp:,} of {len(truth):,} leaked patients "
        f"found, {len(found - truth)} wrongly linked (precision {precision:.4f}, "
        f"recall {recall:.4f})"
    )


def run(story: Story) -> None:
    from phiguard.leaks.scan import scan

    dump = story.data / "leak" / "dump.csv"
    if not dump.exists():
        return
    story.chapter("5 · The leak surfaces")
    label = (story.labels or {}).get("leak") or {}
    size = dump.stat().st_size
    story.say(
        f"  02:00 — a file appears on a third-party platform: {dump.name}, {size / 1e6:.1f} MB"
    )
    _ensure_events(story)
    t = time.perf_counter()
    result = scan(story.app, [dump], actor="demo:privacy-officer")
    took = time.perf_counter() - t
    story.state["scan"] = result
    story.state["scan_id"] = result["scan_id"]
    ids = result["identifiers"]
    story.say(
        f"  scanned in {took:.1f} s: {result['files'][0]['records']:,} records, "
        f"{ids['hkid_valid']:,} valid HKIDs, {ids['hkid_invalid']:,} with a wrong check "
        f"character, {ids['hospital_no']:,} hospital numbers"
    )
    story.say(
        f"  [bold]{result['affected_count']:,} patients affected[/bold]; fields exposed: "
        f"{', '.join(result['fields_exposed'])}"
    )
    story.say(
        f"  {result['unmatched_records']} records link to nobody in the PMI "
        "(made-up people with well-formed HKIDs): never attached to a real patient"
    )
    quality = _quality(result, label)
    if quality:
        story.say(quality)
    if result["attribution"]:
        top = result["attribution"][0]
        vendor = f" (vendor {top['vendor_id']})" if top.get("vendor_id") else ""
        story.say(f"  [bold]source:[/bold] {top['evidence']}{vendor}; score {top['score']:.2f}")
        expected = label.get("query_id")
        if expected:
            verdict = "matches" if top.get("query_id") == expected else "does NOT match"
            story.say(f"  that {verdict} the export the generator planted ({expected})")
    else:
        story.say("  no access event explains this set: the source is outside the logs")
    story.say(
        f"  the scan is recorded as {result['scan_id']} (who, when, file digest, result "
        "digest) and written to the audit log"
    )
