"""Chapter: detection. The contractor's night replayed through the live watcher: the export
starts, the threshold is crossed, a critical alert is raised within a second, the account is
suspended; the morning batch run then completes the same alert with every rule's reasons."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from phiguard.clock import HKT, FixedClock, parse_ts
from phiguard.demo.story import Story
from phiguard.detection import alerts
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.sinks import MockSink
from phiguard.detection.snapshot import from_us

SEV = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "dim"}


def _seed(story: Story) -> dict[str, Any] | None:
    for s in story.labels.get("scenarios", []):
        if s.get("kind") == "bulk_export" and not s.get("decoy"):
            return s
    return None


def _night(story: Story, start: datetime, end: datetime) -> pa.Table:
    """Every access of that night, from the event store (or the generated file)."""
    import duckdb

    from phiguard.detection.engines.duckdb import _parquet_source
    from phiguard.detection.service import events_uri

    uri = events_uri(story.app, DetectionSettings())
    source = _parquet_source(uri) or _parquet_source(str(story.data / "events.parquet"))
    if source is None:
        return pa.table({})
    con = duckdb.connect()
    try:
        return con.sql(
            f"SELECT event_id, source, seq, ts, account_id, action, patient_id, fields, "
            f"query_id, client_ip, device_id, purpose, outcome FROM {source} "
            f"WHERE ts >= TIMESTAMPTZ '{start.isoformat()}' AND ts < "
            f"TIMESTAMPTZ '{end.isoformat()}' ORDER BY ts"
        ).to_arrow_table()
    finally:
        con.close()


def run(story: Story) -> None:
    seed = _seed(story)
    if seed is None:
        return
    from phiguard.detection.watch import Watcher

    app = story.app
    story.chapter("4 · Detection: the 2 am export, caught while it runs")
    account, first, last = seed["account_id"], parse_ts(seed["first_ts"]), parse_ts(seed["last_ts"])
    night = _night(story, first - timedelta(minutes=20), last + timedelta(minutes=5))
    if night.num_rows == 0:
        story.say("  no access events to replay")
        return
    saved_clock = app.clock
    clock = FixedClock(first - timedelta(minutes=20))
    app.clock = clock
    sink = MockSink(name="mock")
    p = DetectionSettings(contain="account", sink_min_severity="high")
    try:
        t0 = time.perf_counter()
        watcher = Watcher.start(app, p, sinks=[sink], baseline_before=first)
        story.say(
            f"  phiguard watch: baselines for {len(watcher.live.b.prev_max):,} accounts "
            f"read from the history before that night in {time.perf_counter() - t0:.1f} s;"
            " now replaying the night as it was ingested, 30 seconds of it at a time"
        )
        alert_id = _replay(story, watcher, night, account, clock)
        watcher.close()
    finally:
        app.clock = saved_clock
    if alert_id is None:
        story.say("  [yellow]the watcher raised nothing for the export[/yellow]")
        return
    story.state["alert_id"] = alert_id
    if sink.sent:
        story.say(
            f"  sent to the security team's webhook/e-mail/syslog sinks "
            f"({len(sink.sent)} message(s), the mock sink in this demo)"
        )
    _morning(story, alert_id, first)


def _replay(
    story: Story, watcher: Any, night: pa.Table, account: str, clock: FixedClock
) -> str | None:
    ts = night.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    t0, t_end = pc.min(ts).as_py(), pc.max(ts).as_py()
    step = 30_000_000
    rows_by_account = 0
    alert_id = None
    announced = False
    cut_at = None
    for lo in range(t0, t_end + 1, step):
        mask = pc.and_(pc.greater_equal(ts, lo), pc.less(ts, lo + step))
        chunk = night.filter(mask)
        if chunk.num_rows == 0:
            continue
        clock.at = from_us(lo + step)
        mine = pc.sum(pc.equal(chunk["account_id"], account)).as_py() or 0
        if mine and not announced:
            story.say(
                f"  {clock.at.astimezone(HKT):%H:%M:%S} [bold]{account}[/bold] starts an export…"
            )
            announced = True
        rows_by_account += mine
        for r in watcher.feed(chunk):
            a = r.alert
            if a.account_id != account and a.severity not in ("high", "critical"):
                continue
            style = SEV.get(a.severity, "")
            story.say(
                f"  {clock.at.astimezone(HKT):%H:%M:%S} [{style}]ALERT {a.alert_id} "
                f"{a.severity.upper()}[/{style}] {a.rule} on {a.account_id} — raised "
                f"{r.latency_s:.2f} s after the batch that crossed the threshold "
                f"({rows_by_account:,} rows exported so far)"
            )
            if r.contained and "already" not in r.contained:
                story.say(f"           containment: [bold]{r.contained}[/bold]")
            elif r.contained:
                story.say(
                    "           containment: the account is suspended — here it already "
                    "was, by chapter 3's kill switch; with PHIGUARD_DETECT_CONTAIN=account "
                    "the watcher does it at this moment on its own"
                )
            if a.account_id == account and a.severity == "critical" and alert_id is None:
                alert_id, cut_at = a.alert_id, rows_by_account
    if alert_id and cut_at is not None and rows_by_account > cut_at:
        story.say(
            f"  in the recorded night the export ran on to {rows_by_account:,} rows; "
            f"suspended at the critical alert, it would have stopped near {cut_at:,} — "
            f"{rows_by_account - cut_at:,} patients' records kept in"
        )
    return alert_id


def _morning(story: Story, alert_id: str, first: datetime) -> None:
    """The batch run over that day completes the live alert instead of repeating it."""
    from phiguard.detection.service import detect

    app = story.app
    day = first.astimezone(HKT).replace(hour=0, minute=0, second=0, microsecond=0)
    t = time.perf_counter()
    try:  # at 07:00 the morning run sees the night, not the rest of the day
        outcome = detect(app, since=day, until=day + timedelta(hours=7))
    except Exception as exc:  # the story goes on: the live alert stands on its own
        story.say(f"  (batch run skipped: {exc})")
        outcome = None
    a = alerts.as_json(alerts.get(app, alert_id), app.settings.timezone)
    if outcome is not None:
        by_sev: dict[str, int] = {}
        for x in outcome.alerts:
            by_sev[x.severity] = by_sev.get(x.severity, 0) + 1
        counts = ", ".join(
            f"{n} {s}"
            for s, n in sorted(
                by_sev.items(), key=lambda kv: ["critical", "high", "medium", "low"].index(kv[0])
            )
        )
        ex = outcome.result.explain
        story.say(
            f"  07:00 the batch run (`phiguard detect`) over that day: "
            f"{ex.get('events', 0):,} accesses in {time.perf_counter() - t:.1f} s, "
            f"{ex.get('explained_share', 0):.1%} explained by encounters or grants; "
            f"alerts: {counts}; the live alert {alert_id} is completed, not repeated"
        )
        kept = sorted((app.home.root / "detection" / "days").glob("day=*"))
        if kept:
            story.say(
                f"  {len(kept)} whole days of baseline history were condensed once and kept "
                "(HOME/detection/days, pseudonymous ids only): tomorrow's run reads them "
                "instead of their events"
            )
    story.say(
        f"  [bold]{a['alert_id']}[/bold] [{SEV[a['severity']]}]{a['severity']}[/] "
        f"score {a['score']}  {a['account_id']} ({a['vendor_id'] or 'staff'})  "
        f"{a['first_ts'][11:16]}–{a['last_ts'][11:16]}  "
        f"{a['patient_count']:,} patients  rules: {', '.join(a['rules'])}"
    )
    for reason in a["reasons"][:6]:
        story.say(f"    · {reason}")
    story.say(
        f"  sample of patients: {', '.join(a['patient_ids_sample'])}   → "
        f"phiguard alerts show {a['alert_id']}"
    )
