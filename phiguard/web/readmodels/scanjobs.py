"""Leak scans started from the console run in a background thread so the page can show
progress. The upload is written to a private temporary folder outside the home (it holds
plaintext identifiers), scanned, and deleted whatever happens."""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from phiguard.app import App
from phiguard.errors import NotFound, PhiguardError, UsageError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_JOBS = 50


@dataclass
class ScanJob:
    job_id: str
    actor: str
    names: list[str]
    total: int
    done: int = 0
    state: str = "running"  # running | done | failed
    scan_id: str | None = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        fraction = (self.done / self.total) if self.total else 0.0
        if self.state == "done":
            fraction, message = 1.0, "done"
        elif self.state == "failed":
            message = f"failed: {self.error}"
        else:
            message = f"read {self.done:,} of {self.total:,} bytes"
        return {
            "job_id": self.job_id,
            "state": self.state,
            "fraction": round(fraction, 3),
            "message": message,
            "scan_id": self.scan_id,
            "files": self.names,
        }


def safe_name(name: str | None) -> str:
    base = Path(name or "upload").name
    cleaned = _SAFE.sub("_", base).strip("._") or "upload"
    return cleaned[:100]


class ScanJobs:
    def __init__(self, app: App, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.jobs: dict[str, ScanJob] = {}
        self._lock = threading.Lock()

    def stage(self, uploads: list[tuple[str | None, BinaryIO]]) -> tuple[Path, list[Path]]:
        if not uploads:
            raise UsageError("choose a file to scan")
        folder = Path(tempfile.mkdtemp(prefix="phiguard-scan-"))
        paths: list[Path] = []
        total = 0
        try:
            for i, (name, stream) in enumerate(uploads):
                path = folder / f"{i:02d}-{safe_name(name)}"
                with path.open("wb") as out:
                    while chunk := stream.read(1 << 20):
                        total += len(chunk)
                        if total > self.max_bytes:
                            raise UsageError("the upload is larger than the configured limit")
                        out.write(chunk)
                paths.append(path)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder, paths

    def run_now(self, folder: Path, paths: list[Path], *, actor: str) -> dict[str, Any]:
        from phiguard.leaks.scan import scan

        try:
            return scan(self.app, paths, actor=actor)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def start(self, folder: Path, paths: list[Path], *, actor: str) -> ScanJob:
        job = ScanJob(
            secrets.token_hex(8),
            actor,
            [p.name[3:] for p in paths],
            sum(p.stat().st_size for p in paths),
        )
        with self._lock:
            if len(self.jobs) >= MAX_JOBS:
                oldest = sorted(self.jobs.values(), key=lambda j: j.started)
                for old in oldest[: len(self.jobs) - MAX_JOBS + 1]:
                    if old.state != "running":
                        self.jobs.pop(old.job_id, None)
            self.jobs[job.job_id] = job

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total or job.total

        def work() -> None:
            from phiguard.leaks.scan import scan

            try:
                result = scan(self.app, paths, actor=actor, progress=progress)
                job.scan_id = str(result.get("scan_id"))
                job.state = "done"
            except PhiguardError as exc:
                job.error, job.state = str(exc), "failed"
            except Exception as exc:  # reported on the page; the server keeps running
                job.error, job.state = f"{type(exc).__name__}", "failed"
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        threading.Thread(target=work, name=f"scan-{job.job_id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> ScanJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no scan job {job_id}")
        return job
