"""Chapter 2: the access log is sealed, signed, verified — and an edit to it is caught."""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from pathlib import Path

from phiguard.app import App
from phiguard.audit import journal as jn
from phiguard.audit.checkpoint import Checkpoint, SignedNote
from phiguard.audit.log import AuditLog
from phiguard.audit.verify import verify_log
from phiguard.demo.story import Story


def _ingest(story: Story) -> None:
    events = story.data / "events.parquet"
    if story.state.get("ingested") or not events.exists():
        return
    try:
        ingest = importlib.import_module("phiguard.audit.ingest")
    except ModuleNotFoundError:
        return
    t = time.perf_counter()
    result = ingest.ingest_files(story.app, [events], actor="demo")
    took = time.perf_counter() - t
    accepted = getattr(result, "accepted", None)
    story.state["ingested"] = True
    if accepted is not None:
        story.say(
            f"  ingested {accepted:,} access events from {events.name} in {took:.1f} s: "
            "each row's exact bytes sealed in the log, durable before acknowledged"
        )


def _tamper_copy(story: Story) -> None:
    """An insider edits one byte of a copy of the log; verification names the spot."""
    home = story.app.home.root
    with tempfile.TemporaryDirectory(prefix="phiguard-tamper-") as tmp:
        copy = Path(tmp) / "home"
        copy.mkdir()
        shutil.copy2(home / "phiguard.json", copy / "phiguard.json")
        shutil.copytree(home / "keys", copy / "keys")
        shutil.copytree(home / "audit", copy / "audit")
        frames = [
            f
            for _, seg in jn.segments(copy / "audit" / "journal")
            for f in jn.read_frames(seg)
            if f.kind == jn.KIND_EVENT
        ]
        if not frames:
            return
        target = frames[len(frames) // 2]
        data = bytearray(target.segment.read_bytes())
        at = target.offset + jn.HEADER_SIZE + 32 * target.count + 100
        data[at] ^= 0x01
        target.segment.write_bytes(bytes(data))
        settings = story.app.settings.model_copy(update={"home": copy})
        twin = App.open(settings, migrate=False)
        try:
            report = verify_log(AuditLog(twin))
        finally:
            twin.close()
    story.say(
        f"  [bold]tampering test[/] on a copy: one bit flipped in journal/{target.segment.name}, "
        f"inside the entries {target.first_index:,}–{target.first_index + target.count - 1:,}"
    )
    problems = [f for f in report.findings if f.error]
    verdict = "[red]CAUGHT[/]" if problems else "[yellow]not caught (!)[/]"
    story.say(
        f"  phiguard audit verify → {verdict}: {problems[0] if problems else 'no problem found'}"
    )


def run(story: Story) -> None:
    app = story.app
    story.chapter("2 · The tamper-evident access log")
    _ingest(story)
    log = app.audit
    log.publish()
    note = log.latest_checkpoint()
    if note is None:
        return
    cp = Checkpoint.parse_body(SignedNote.parse(note).text)
    story.say(
        f"  the log holds {cp.size:,} entries; its latest signed checkpoint "
        "(C2SP tlog-checkpoint, Ed25519):"
    )
    for line in note.decode().rstrip("\n").split("\n"):
        story.out.print(f"    {line}", markup=False, highlight=False, soft_wrap=True)
    t = time.perf_counter()
    report = verify_log(log)
    took = time.perf_counter() - t
    status = "[green]VERIFIED[/]" if report.ok else "[red]NOT VERIFIED[/]"
    story.say(
        f"  phiguard audit verify → {status}: {report.entries:,} entries decrypted and re-hashed, "
        f"every tree node re-computed, {report.checkpoints:,} signatures checked in {took:.1f} s"
    )
    story.state["checkpoint"] = note.decode()
    story.state["log_size"] = cp.size
    _tamper_copy(story)
