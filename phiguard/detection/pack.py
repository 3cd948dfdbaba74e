"""Running the rule pack on an engine: register the data, build the shared stages, run each
rule's SQL, and let each rule's assessor turn rows into :class:`Hit` s.

The engine does all the heavy lifting; the Python side only sees the (few) rows that are
already hits, so the same pack gives the same hits on DuckDB and on Spark.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from jinja2 import Environment, StrictUndefined

from phiguard.detection.engines import Engine
from phiguard.detection.rollups import DaySummaries, Rollups
from phiguard.detection.rules import PACK, Context, Hit, Rule
from phiguard.detection.rules.stages import STAGES, closure
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import Reference, from_us, to_us

_JINJA = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)  # noqa: S701 - SQL, not HTML


@dataclass(frozen=True)
class Window:
    """The span a run reports on, and how much history before it is read for baselines."""

    since: datetime | None
    until: datetime | None
    baseline_days: int
    tz: str = "Asia/Hong_Kong"

    @property
    def load_from(self) -> datetime | None:
        return None if self.since is None else self.since - timedelta(days=self.baseline_days)

    @property
    def report_us(self) -> int:
        return 0 if self.since is None else int(to_us(self.since) or 0)

    @property
    def until_us(self) -> int | None:
        return None if self.until is None else to_us(self.until)

    @property
    def offset_us(self) -> int | None:
        """The zone's UTC offset if it is the same all through the data's years (no daylight
        saving: Hong Kong since 1979), else None. Fixed offsets let the engines compute local
        days and hours with integer arithmetic instead of a time-zone conversion per row."""
        zone = ZoneInfo(self.tz)
        years = range(2000, 2040)
        offsets = {datetime(y, m, 1, 12, tzinfo=zone).utcoffset() for y in years for m in (1, 7)}
        if len(offsets) != 1:
            return None
        off = offsets.pop()
        return None if off is None else int(off.total_seconds()) * 1_000_000

    @property
    def report_dayno(self) -> int:
        if self.since is None:
            return -1_000_000
        local = self.since.astimezone(ZoneInfo(self.tz)).date()
        return (local - date(1970, 1, 1)).days


def render(sql: str, engine: Engine, p: DetectionSettings, w: Window, **extra: Any) -> str:
    ctx: dict[str, Any] = {
        "d": engine.dialect,
        "p": p,
        "w": w,
        "n": p.sample_size,
        "chunk": None,  # ev only: the [start, end) of the day being read
        "one_day": False,  # daily stages: every row read is of the same day
    }
    return _JINJA.from_string(sql).render(**{**ctx, **extra})


@dataclass
class PackResult:
    hits: list[Hit]
    feature_table: pa.Table | None = None  # one row per account-day, by account and day
    explain: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def features(self) -> list[dict[str, Any]]:
        """The account-day features as plain rows (a million account-days are a million
        dicts: scoring reads :attr:`feature_table` instead)."""
        return [] if self.feature_table is None else self.feature_table.to_pylist()


def prepare(engine: Engine, ref: Reference, events_uri: str | None) -> None:
    for name, table in ref.tables.items():
        engine.register(name, table)
    engine.register_events(events_uri)


def build_stages(
    engine: Engine,
    names: list[str],
    p: DetectionSettings,
    w: Window,
    timings: dict[str, float],
    summaries: DaySummaries | None = None,
) -> None:
    """Build the stages ``names`` need, dependencies first.

    Daily stages (``Stage.daily``) read the events one local day at a time on engines that
    chunk (DuckDB): the ``ev`` view is narrowed to the day, each daily stage is computed for
    it and appended, and the day's scratch tables are replaced by the next day's. Their
    queries group by day and join only reference-sized tables, so the days' results together
    are exactly the one-pass result that Spark computes; what changes is that a day's accesses
    fit in memory where a hundred million events' do not.

    With ``summaries`` (ADR 10), a whole local day is condensed once — its accesses, hours and
    clients — and kept; later runs read the day's summary instead of its events."""
    order = closure(names)
    chunked = getattr(engine, "chunked", False)
    daily = [
        n for n in order if STAGES[n].daily or (STAGES[n].summarised and summaries is not None)
    ]
    after_daily = {n for n in order if n not in daily and set(closure([n])) & set(daily)}
    chunks = day_chunks(engine, p, w) if daily and chunked else None
    built: set[str] = set()

    def render_day(sql: str, **extra: Any) -> str:
        return render(sql, engine, p, w, one_day=True, **extra)

    def timed(name: str, run: Callable[[], None]) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        timings[f"stage:{name}"] = timings.get(f"stage:{name}", 0.0) + time.perf_counter() - t0
        timings[f"cpu:stage:{name}"] = (
            timings.get(f"cpu:stage:{name}", 0.0) + time.process_time() - c0
        )

    def build(name: str, **extra: Any) -> None:
        stage = STAGES[name]
        sql = render(stage.sql, engine, p, w, **extra)
        if stage.kind == "view":
            timed(name, lambda: engine.view(name, sql))
        else:
            timed(name, lambda: engine.materialise(name, sql))

    def forget() -> None:
        for t in [t for t in built if STAGES[t].transient and t not in names]:
            readers = [s for s in order if t in STAGES[s].needs]
            if all(r in built for r in readers):
                engine.drop(t)
                built.discard(t)

    for name in [n for n in order if n not in after_daily and n not in daily]:
        build(name)
        built.add(name)
    if chunks is None:
        for name in daily:
            build(name)
            built.add(name)
            forget()
    else:
        created: set[str] = set()
        for chunk in chunks:
            engine.view("ev", render(STAGES["ev"].sql, engine, p, w, chunk=chunk))
            engine.view("ev_all", render(STAGES["ev_all"].sql, engine, p, w, chunk=chunk))
            dayno = (int(to_us(chunk[0]) or 0) + int(w.offset_us or 0)) // DAY_US
            summary = None
            if summaries is not None and _whole_day(chunk, w):
                t0, c0 = time.perf_counter(), time.process_time()
                summary = summaries.day(engine, dayno, daily, render_day)
                key = "summary:written" if summary.written else "summary:read"
                timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
                timings[f"cpu:{key}"] = timings.get(f"cpu:{key}", 0.0) + time.process_time() - c0
            for name in daily:
                stage = STAGES[name]
                if summary is not None and name in summary.sql:
                    sql = summary.sql[name]
                else:
                    sql = render(stage.sql, engine, p, w, one_day=True)
                if stage.scratch or name not in created:
                    timed(name, functools.partial(engine.materialise, name, sql))
                    created.add(name)
                else:
                    timed(name, functools.partial(engine.append, name, sql))
            if summary is not None:
                summary.close()
        built.update(daily)
        build("ev")
        build("ev_all")
        forget()
    for name in [n for n in order if n in after_daily]:
        build(name)
        built.add(name)
        forget()


DAY_US = 86_400_000_000


def _whole_day(chunk: tuple[datetime, datetime], w: Window) -> bool:
    """True when the window does not cut the day ``chunk`` (its summary is then valid)."""
    lo, hi = chunk
    return (w.load_from is None or w.load_from <= lo) and (w.until is None or w.until >= hi)


def day_chunks(
    engine: Engine, p: DetectionSettings, w: Window
) -> list[tuple[datetime, datetime]] | None:
    """The local days the events of the window fall on, as [start, end) UTC instants; None
    when the zone's offset is not fixed (the stages then run in one pass)."""
    off = w.offset_us
    if off is None:
        return None
    sql = "SELECT {{ d.ts_us('min(ts)') }} AS lo, {{ d.ts_us('max(ts)') }} AS hi FROM events_raw"
    row = engine.query(render(sql, engine, p, w))[0]
    if row["lo"] is None:
        return None
    lo, hi = int(row["lo"]), int(row["hi"])
    if w.load_from is not None:
        lo = max(lo, int(to_us(w.load_from) or 0))
    if w.until_us is not None:
        hi = min(hi, w.until_us - 1)
    if hi < lo:
        return None
    first, last = (lo + off) // DAY_US, (hi + off) // DAY_US
    return [
        (from_us(day * DAY_US - off), from_us((day + 1) * DAY_US - off))
        for day in range(first, last + 1)
    ]


def run_rules(
    engine: Engine, rules: tuple[Rule, ...], ctx: Context, w: Window, timings: dict[str, float]
) -> list[Hit]:
    hits: list[Hit] = []
    for rule in rules:
        t0, c0 = time.perf_counter(), time.process_time()
        rows = engine.query(render(rule.sql, engine, ctx.p, w))
        rows.sort(key=_row_key)
        for row in rows:
            hits.extend(rule.assess(row, ctx))
        timings[f"rule:{rule.name}"] = time.perf_counter() - t0
        timings[f"cpu:rule:{rule.name}"] = time.process_time() - c0
    hits.sort(key=Hit.key)
    return hits


def run_pack(
    engine: Engine,
    ref: Reference,
    p: DetectionSettings,
    window: Window,
    *,
    events_uri: str | None,
    rules: tuple[Rule, ...] = PACK,
    features: bool = True,
    explain: bool = True,
) -> PackResult:
    """Evaluate ``rules`` over the events of ``window`` (plus its baseline history)."""
    from phiguard.detection.explain import EXPLAIN_SQL, summarise
    from phiguard.detection.features import FEATURES_SQL

    timings: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    prepare(engine, ref, events_uri)
    needs = [s for r in rules for s in r.needs]
    if features or explain:
        needs += ["acct_day", "acct_day_x"]
    summaries = None
    if getattr(engine, "chunked", False):
        rollups = Rollups.for_source(
            getattr(engine, "summaries_root", None), events_uri, window.offset_us
        )
        summaries = None if rollups is None else DaySummaries(rollups)
    build_stages(engine, needs, p, window, timings, summaries)
    if summaries is not None:
        summaries.rollups.prune()
    ctx = Context.build(p, ref, window.tz)
    hits = run_rules(engine, rules, ctx, window, timings)
    result = PackResult(hits=hits, timings=timings)
    if features:
        t1 = time.perf_counter()
        table = engine.arrow(render(FEATURES_SQL, engine, p, window))
        result.feature_table = table.sort_by([("account_id", "ascending"), ("dayno", "ascending")])
        timings["features"] = time.perf_counter() - t1
    if explain:
        t1 = time.perf_counter()
        result.explain = summarise(engine.query(render(EXPLAIN_SQL, engine, p, window)))
        timings["explain"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    timings["cpu:total"] = time.process_time() - c0
    return result


def _row_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple("" if v is None else repr(v) for v in row.values())
