"""A real PostgreSQL server for the tests.

Uses the server on 127.0.0.1:5432 when it answers (CI and developer machines of this kind
start one); otherwise starts a throwaway cluster with the system's ``initdb``/``pg_ctl`` in a
temporary folder. It never skips: a test suite that silently drops its PostgreSQL half would
prove nothing about running at scale.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DEFAULT_DSN = os.environ.get("PHIGUARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _throwaway_server() -> Iterator[str]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    if not initdb:
        raise RuntimeError("no PostgreSQL on 127.0.0.1:5432 and no initdb to start one")
    bindir = os.path.dirname(initdb)
    tmp = tempfile.mkdtemp(prefix="phiguard-pg-")
    data = os.path.join(tmp, "data")
    port = _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(tmp, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_user, initdb, "-D", data, "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    # -l: the postmaster must not inherit our pipes, or waiting for its output never ends
    subprocess.run(
        [
            *as_user,
            os.path.join(bindir, "pg_ctl"),
            "-D",
            data,
            "-w",
            "-l",
            os.path.join(tmp, "server.log"),
            "-o",
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        for _ in range(50):
            if _reachable(dsn):
                break
            time.sleep(0.1)
        yield dsn
    finally:
        subprocess.run(
            [*as_user, os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def server() -> Iterator[str]:
    """Yield an admin DSN of a running server."""
    if _reachable(DEFAULT_DSN):
        yield DEFAULT_DSN
    else:
        with _throwaway_server() as dsn:
            yield dsn


@contextmanager
def fresh_database(admin_dsn: str, template: str | None = None) -> Iterator[str]:
    """Create an empty database (optionally from a template), yield its SQLAlchemy URL, drop it."""
    name = f"phg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        tmpl = f" TEMPLATE {template}" if template else ""
        conn.execute(f"CREATE DATABASE {name}{tmpl}")
    base = admin_dsn.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
