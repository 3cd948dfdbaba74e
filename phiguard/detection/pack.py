"""Running the rule pack on an engine: register the data, build the shared stages, run each
rule's SQL, and let each rule's assessor turn rows into :class:`Hit` s.

The engine does all the heavy lifting; the Python side only sees the (few) rows that are
already hits, so the same pack gives the same hits on DuckDB and on Spark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, StrictUndefined

from phiguard.detection.engines import Engine
from phiguard.detection.rules import PACK, Context, Hit, Rule
from phiguard.detection.rules.stages import STAGES, closure
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import Reference, to_us

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
    return _JINJA.from_string(sql).render(d=engine.dialect, p=p, w=w, n=p.sample_size, **extra)


@dataclass
class PackResult:
    hits: list[Hit]
    features: list[dict[str, Any]] = field(default_factory=list)
    explain: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def prepare(engine: Engine, ref: Reference, events_uri: str | None) -> None:
    for name, table in ref.tables.items():
        engine.register(name, table)
    engine.register_events(events_uri)


def build_stages(
    engine: Engine, names: list[str], p: DetectionSettings, w: Window, timings: dict[str, float]
) -> None:
    order = closure(names)
    built: set[str] = set()
    for name in order:
        stage = STAGES[name]
        t0, c0 = time.perf_counter(), time.process_time()
        sql = render(stage.sql, engine, p, w)
        if stage.kind == "view":
            engine.view(name, sql)
        else:
            engine.materialise(name, sql)
        timings[f"stage:{name}"] = time.perf_counter() - t0
        timings[f"cpu:stage:{name}"] = time.process_time() - c0
        built.add(name)
        for t in [t for t in built if STAGES[t].transient and t not in names]:
            readers = [s for s in order if t in STAGES[s].needs]
            if all(r in built for r in readers):
                engine.drop(t)
                built.discard(t)


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
        needs += ["acct_day", "access_x"]
    build_stages(engine, needs, p, window, timings)
    ctx = Context.build(p, ref, window.tz)
    hits = run_rules(engine, rules, ctx, window, timings)
    result = PackResult(hits=hits, timings=timings)
    if features:
        t1 = time.perf_counter()
        result.features = engine.query(render(FEATURES_SQL, engine, p, window))
        result.features.sort(key=lambda r: (r["account_id"], r["dayno"]))
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
