"""The console and API under load on loopback, against ``phiguard serve`` on demo data.

Targets (issue 8): dashboard and alert list p99 ≤ 200 ms at 100 requests/s; ``/v1/decide``
≥ 3,000 requests/s. Anchors in the same run: the same uvicorn serving a bare FastAPI
endpoint (the framework's floor on this machine) and the decision point called in process
(no HTTP). wrk (Debian) drives the throughput runs; a constant-rate Python client measures
the page latencies (wrk cannot hold a fixed rate).

Quick: 5,000 patients, 2 days. ``BENCH_SCALE=full``: 20,000 patients, 7 days (the demo).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import FULL

PASSWORD = "bench-lantern-harbour-42"
SETTLE_SECONDS = int(os.environ.get("BENCH_WEB_SETTLE", "10"))
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 60) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def prepare(tmp: Path) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from phiguard.app import App
    from phiguard.settings import Settings
    from phiguard.web.auth.tokens import ApiTokens
    from phiguard.web.auth.users import Users
    from tests.web.hospital import build

    app = App.init(Settings(home=tmp / "home"))
    t = time.perf_counter()
    patients, days = (20_000, 7) if FULL else (5_000, 2)
    hospital = build(app, tmp / "data", patients=patients, days=days)
    print(
        f"demo data: {patients:,} patients, {days} days, {len(hospital.alerts)} alerts "
        f"({time.perf_counter() - t:.0f} s to build)"
    )
    users = Users(app)
    users.create("bench-admin", "admin", PASSWORD, actor="bench")
    officer = users.create("bench-officer", "privacy_officer", PASSWORD, actor="bench")
    token = ApiTokens(app).create("bench CMS", "decide", actor="bench").secret
    app.close()
    return {"secret": officer.totp_secret or "", "token": token}


def login(base: str, secret: str) -> dict[str, str]:
    import httpx

    from phiguard.web.auth import totp

    c = httpx.Client(base_url=base)
    page = c.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    c.post("/login", data={"username": "bench-officer", "password": PASSWORD, "csrf_token": csrf})
    page = c.get("/login/mfa")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    c.post("/login/mfa", data={"code": totp.code_at(secret, datetime.now(UTC)), "csrf_token": csrf})
    cookie = c.cookies.get("phiguard_session")
    assert cookie, "login failed"
    return {"Cookie": f"phiguard_session={cookie}"}


async def constant_rate(
    base: str, path: str, headers: dict[str, str], rate: float, seconds: float
) -> list[float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=10, limits=httpx.Limits(max_connections=64)
    ) as c:

        async def one() -> None:
            nonlocal errors
            t = time.perf_counter()
            r = await c.get(path)
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors += 1

        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    if errors:
        raise RuntimeError(f"{errors} non-200 answers from {path}")
    return latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wrk(
    url: str, script: Path, seconds: int, connections: int = 32, threads: int = 2
) -> tuple[float, float]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} error answers:\n{out}")
    return rps, p99_ms


BARE = textwrap.dedent("""
    from fastapi import FastAPI
    from pydantic import BaseModel
    import uvicorn, sys
    api = FastAPI()
    class Q(BaseModel):
        account: str
        action: str
    @api.post("/v1/decide")
    def decide(q: Q) -> dict:
        return {"decision": "allow", "reasons": [], "obligations": []}
    uvicorn.run(api, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
""")


def in_process_decisions(home: Path, seconds: float = 3.0) -> float:
    from phiguard.access import pdp
    from phiguard.app import App
    from phiguard.settings import Settings

    app = App.open(Settings(home=home))
    try:
        n, end = 0, time.perf_counter() + seconds
        t = time.perf_counter()
        while time.perf_counter() < end:
            pdp.decide(
                app,
                account="vx-eng-07",
                action="read",
                cluster="HKWC",
                fields=["name", "sex"],
                rows=10,
                purpose="SYSADMIN",
            )
            n += 1
        return n / (time.perf_counter() - t)
    finally:
        app.close()


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk (listed in .ci/apt-packages)")
    tmp = Path(tempfile.mkdtemp(prefix="phg-bench-web-"))
    procs: list[subprocess.Popen[bytes]] = []
    seconds = 15 if FULL else 8
    try:
        creds = prepare(tmp)
        home = tmp / "home"
        port = free_port()
        exe = Path(sys.executable).parent / "phiguard"
        workers = os.environ.get("BENCH_WEB_WORKERS", "2")
        print(f"phiguard serve --workers {workers}")
        procs.append(
            subprocess.Popen(
                [str(exe), "serve", "--home", str(home), "--port", str(port), "--workers", workers],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        base = f"http://127.0.0.1:{port}"
        wait_up(f"{base}/v1/health")
        headers = login(base, creds["secret"])
        # steady state, as a running console is: the first seconds after a start belong to
        # the background parts catching up (the detection watcher reads the event store)
        time.sleep(SETTLE_SECONDS)
        print(
            f"\nconstant rate, 100 requests/s for {seconds} s after a {SETTLE_SECONDS} s "
            "settle and a 3 s warm-up at 20/s (target p99 ≤ 200 ms):"
        )
        for path in ("/", "/alerts"):
            asyncio.run(constant_rate(base, path, headers, 20, 3))  # warm both workers
            lat = asyncio.run(constant_rate(base, path, headers, 100, seconds))
            print(
                f"  {path:8} p50 {statistics.median(lat) * 1e3:6.1f} ms   "
                f"p99 {pct(lat, 99) * 1e3:6.1f} ms   ({len(lat)} requests)"
            )

        # the same pages closed-loop with wrk: how far the server is from the 100/s asked
        # (the Python client above shares the 2 cores; wrk needs far less of them)
        print(f"\npage capacity, wrk -t1 -c8 for {seconds // 2} s (closed loop):")
        for path in ("/", "/alerts"):
            page_lua = tmp / "page.lua"
            page_lua.write_text(f'wrk.headers["Cookie"] = "{headers["Cookie"]}"\n')
            rps, p99 = wrk(f"{base}{path}", page_lua, seconds // 2, connections=8, threads=1)
            print(f"  {path:8} {rps:8,.0f} req/s   p99 {p99:6.1f} ms")

        script = tmp / "decide.lua"
        body = json.dumps(
            {
                "account": "vx-eng-07",
                "action": "read",
                "cluster": "HKWC",
                "fields": ["name", "sex"],
                "rows": 10,
                "purpose": "SYSADMIN",
            }
        )
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body)}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {creds["token"]}"\n'
        )
        wrk(f"{base}/v1/decide", script, 2)  # warm-up
        ours, ours_p99 = wrk(f"{base}/v1/decide", script, seconds)

        bare_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", BARE, str(bare_port)]))
        wait_up(f"http://127.0.0.1:{bare_port}/docs")
        wrk(f"http://127.0.0.1:{bare_port}/v1/decide", script, 2)
        bare, bare_p99 = wrk(f"http://127.0.0.1:{bare_port}/v1/decide", script, seconds)
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait(timeout=20)
        procs.clear()
        local = in_process_decisions(home)
        print(f"\n/v1/decide with wrk -t2 -c32 for {seconds} s (target ≥ 3,000 requests/s):")
        print(
            f"  phiguard (token auth, Cedar/Python PDP, audited): {ours:8,.0f} req/s  "
            f"p99 {ours_p99:.1f} ms"
        )
        print(
            f"  anchor: bare FastAPI endpoint, same uvicorn:      {bare:8,.0f} req/s  "
            f"p99 {bare_p99:.1f} ms"
        )
        print(f"  anchor: decide() in process, no HTTP:             {local:8,.0f} decisions/s")
        print(f"  ratio phiguard / bare FastAPI: {ours / bare:.2f}×")
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PHIGUARD_WEB_TOKEN_CACHE_SECONDS", "2")
    main()
