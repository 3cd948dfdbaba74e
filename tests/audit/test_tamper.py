"""Tampering with a copy of a home: every change to HOME/audit is caught by `audit verify`.

One home is built per module (three retention periods, one of them crypto-erased; many
batches, actions and checkpoints; several journal segments). Each case copies it, changes
it one way, and requires verification to fail, naming where.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from phiguard.app import App
from phiguard.audit import journal as jn
from phiguard.audit import log as log_module
from phiguard.audit.retention import erase_period
from phiguard.clock import HKT, FixedClock
from phiguard.settings import Settings
from tests.audit.conftest import reopen, verify_home

SEED = 9162


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("pristine") / "home"
    clock = FixedClock(datetime(2026, 3, 10, 8, 0, tzinfo=HKT))
    old = log_module.SEGMENT_BYTES
    log_module.SEGMENT_BYTES = 24 * 1024
    try:
        app = App.init(Settings(home=home), clock=clock)
        rng = random.Random(SEED)
        for month in range(3):
            for b in range(6):
                app.audit.append_batch(
                    "CMS",
                    [
                        b"E%d-%d-%d,CMS,dr-%d,read,P%07d"
                        % (month, b, i, i % 7, rng.randrange(10**7))
                        for i in range(rng.randrange(5, 120))
                    ],
                )
                if b % 2:
                    app.record("access:grant:approved", actor="sec-1", subject=f"grant:{month}-{b}")
                    app.audit.publish()
            clock.advance(timedelta(days=31))
        erase_period(app, "2026-03", actor="dpo")
        app.audit.append_batch("ePR", [b"after the erasure"])
        app.close()
    finally:
        log_module.SEGMENT_BYTES = old
    report = verify_home(home)
    assert report.ok, [str(f) for f in report.findings]
    assert report.erased_entries > 0 and report.checkpoints >= 9
    assert len(list((home / "audit" / "journal").glob("*.seg"))) >= 3
    return home


def _files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "audit").rglob("*") if p.is_file() and p.stat().st_size > 0)


def _tampered(pristine: Path, tmp_path: Path, change: Callable[[Path], object]) -> list[str]:
    home = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
    shutil.copytree(pristine, home)
    change(home)
    report = verify_home(home)
    problems = [str(f) for f in report.findings if f.error]
    return problems


def _flip(path: Path, offset: int, mask: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def test_every_file_kind_is_covered(pristine: Path) -> None:
    names = {p.relative_to(pristine / "audit").parts[0] for p in _files(pristine)}
    assert names >= {"journal", "tree", "keys", "checkpoints.log", "state.json", "log.json"}
    assert (pristine / "audit" / "keys" / "2026-03.erased").exists()


def test_random_byte_flips_are_all_detected(pristine: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    files = _files(pristine)
    for trial in range(120):
        path = files[trial % len(files)] if trial < len(files) else rng.choice(files)
        rel = path.relative_to(pristine)
        offset = rng.randrange(path.stat().st_size)
        mask = 1 << rng.randrange(8)
        problems = _tampered(
            pristine, tmp_path, lambda h, rel=rel, o=offset, m=mask: _flip(h / rel, o, m)
        )
        assert problems, f"flip of bit {mask} at {rel}:{offset} went unnoticed"
        shutil.rmtree(tmp_path / f"copy{len(list(tmp_path.iterdir())) - 1}")


def test_truncations_are_all_detected(pristine: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    files = _files(pristine)
    for trial in range(len(files) + 20):
        path = files[trial] if trial < len(files) else rng.choice(files)
        rel = path.relative_to(pristine)
        cut = rng.randrange(path.stat().st_size)
        problems = _tampered(
            pristine, tmp_path, lambda h, rel=rel, cut=cut: os.truncate(h / rel, cut)
        )
        assert problems, f"truncation of {rel} to {cut} bytes went unnoticed"
        shutil.rmtree(tmp_path / f"copy{len(list(tmp_path.iterdir())) - 1}")


def test_deleting_any_file_is_detected(pristine: Path, tmp_path: Path) -> None:
    for path in _files(pristine):
        rel = path.relative_to(pristine)
        problems = _tampered(pristine, tmp_path, lambda h, rel=rel: (h / rel).unlink())
        assert problems, f"deleting {rel} went unnoticed"


def _frames(home: Path) -> list[jn.Frame]:
    return [f for _, seg in jn.segments(home / "audit" / "journal") for f in jn.read_frames(seg)]


def _rewrite(seg: Path, pieces: list[bytes]) -> None:
    seg.write_bytes(b"".join(pieces))


def test_deleting_reordering_and_replacing_frames(pristine: Path, tmp_path: Path) -> None:
    frames = _frames(pristine)
    by_seg: dict[Path, list[jn.Frame]] = {}
    for f in frames:
        by_seg.setdefault(f.segment, []).append(f)
    seg, fs = max(by_seg.items(), key=lambda kv: len(kv[1]))
    assert len(fs) >= 3
    rel = seg.relative_to(pristine)

    def raw(f: jn.Frame) -> bytes:
        return seg.read_bytes()[f.offset : f.end]

    cases = {
        "delete a middle frame": [raw(f) for i, f in enumerate(fs) if i != 1],
        "swap two frames": [raw(fs[1]), raw(fs[0]), *[raw(f) for f in fs[2:]]],
        "duplicate a frame": [raw(fs[0]), raw(fs[0]), *[raw(f) for f in fs[1:]]],
        "drop the last frame": [raw(f) for f in fs[:-1]],
    }
    for name, pieces in cases.items():
        problems = _tampered(pristine, tmp_path, lambda h, p=pieces: _rewrite(h / rel, p))
        assert problems, name


def test_reencrypted_forgery_by_a_key_holder_is_caught_by_the_signed_roots(
    pristine: Path, tmp_path: Path
) -> None:
    """An insider with the KEK rewrites an entry *and* its leaf hash in the journal and the
    tree files consistently: only the signed checkpoints can catch that — and they do."""

    def forge(home: Path) -> None:
        app = reopen(home)
        frame = next(
            f for f in _frames(home) if f.kind == jn.KIND_EVENT and app.audit.keys.get(f.period)
        )
        aead = app.audit.keys.get(frame.period)
        assert aead is not None
        prepared = jn.prepare(
            frame.kind, "CMS", frame.ts_ms, [b"innocent row"] * frame.count, aead, frame.period
        )
        blob = bytearray(prepared.finalise(frame.first_index))
        blob[4] = frame.flags  # keep the batch structure
        struct.pack_into(">I", blob, jn.HEADER.size, zlib.crc32(bytes(blob[: jn.HEADER.size])))
        data = frame.segment.read_bytes()
        frame.segment.write_bytes(data[: frame.offset] + bytes(blob) + data[frame.end :])
        # rebuild the whole tree from the forged leaves so every node file is consistent
        from phiguard.audit.merkle import MemoryNodes

        leaves = [f.hashes[i : i + 32] for f in _frames(home) for i in range(0, 32 * f.count, 32)]
        mem = MemoryNodes(leaves)
        for level, nodes in enumerate(mem.levels):
            (home / "audit" / "tree" / f"{level:02d}.nodes").write_bytes(b"".join(nodes))
        app.close()

    problems = _tampered(pristine, tmp_path, forge)
    assert any("checkpoint" in p and "root" in p for p in problems), problems


def _records(home: Path) -> list[jn.CheckpointRecord]:
    return list(jn.read_checkpoint_records(home / "audit" / "checkpoints.log"))


def test_checkpoint_reordering_removal_and_replacement(
    pristine: Path, tmp_path: Path, clock: FixedClock
) -> None:
    recs = _records(pristine)
    data = (pristine / "audit" / "checkpoints.log").read_bytes()
    piece = [data[r.offset : r.end] for r in recs]
    path = Path("audit/checkpoints.log")
    cases = {
        "swap two": [piece[1], piece[0], *piece[2:]],
        "remove a middle one": [p for i, p in enumerate(piece) if i != 2],
        "remove the last": piece[:-1],
        "repeat one": [*piece, piece[-1]],
    }
    for name, pieces in cases.items():
        problems = _tampered(
            pristine, tmp_path, lambda h, p=pieces: (h / path).write_bytes(b"".join(p))
        )
        assert problems, name
    # a checkpoint signed by another log's key, spliced in with a valid chain and checksum
    other = App.init(Settings(home=tmp_path / "other"), clock=clock)
    foreign = _records(other.home.root)[0].note
    other.close()

    def splice(home: Path) -> None:
        kept = b"".join(piece[:-1])
        (home / path).write_bytes(kept + jn.encode_checkpoint_record(recs[-2].digest, foreign))

    problems = _tampered(pristine, tmp_path, splice)
    assert any("checkpoint" in p for p in problems), problems


def test_old_state_file_and_rolled_back_log_json(pristine: Path, tmp_path: Path) -> None:
    state = (pristine / "audit" / "state.json").read_text()
    older = state.replace('"count": ', '"count": 1', 1)  # what an older state.json would claim
    problems = _tampered(
        pristine, tmp_path, lambda h: (h / "audit" / "state.json").write_text(older)
    )
    assert problems
    problems = _tampered(
        pristine,
        tmp_path,
        lambda h: (h / "audit" / "log.json").write_text(
            (pristine / "audit" / "log.json").read_text().replace("2026", "2025", 1)
        ),
    )
    assert any("log.json" in p for p in problems), problems


def test_cli_verify_exit_codes_and_where(pristine: Path, tmp_path: Path) -> None:
    from tests.conftest import Cli as RealCli

    good = tmp_path / "good"
    shutil.copytree(pristine, good)
    result = RealCli(good)("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output
    bad = tmp_path / "bad"
    shutil.copytree(pristine, bad)
    frames = _frames(bad)
    target = frames[len(frames) // 2]
    _flip(target.segment, target.offset + jn.HEADER_SIZE + 32 * target.count + 5, 0x10)
    result = RealCli(bad)("audit", "verify")
    assert result.exit_code == 1
    assert "NOT VERIFIED" in result.output
    assert target.segment.name in result.output
    result = RealCli(bad)("audit", "verify", "--format", "json")
    assert result.exit_code == 1
    import json

    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["problems"]
