"""``detect``: one batch run — snapshot, engine, rule pack, scores, episodes, storage, sinks.

This is what ``phiguard detect`` and the web console call; it never prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from phiguard.detection import alerts as store
from phiguard.detection.engines import open_engine
from phiguard.detection.models import Alert, DetectionRun
from phiguard.detection.pack import PackResult, Window, run_pack
from phiguard.detection.rules import Hit
from phiguard.detection.scoring import anomaly_hits, score_days
from phiguard.detection.settings import DetectionSettings
from phiguard.detection.snapshot import Reference, from_app
from phiguard.errors import UsageError

if TYPE_CHECKING:
    from phiguard.app import App


@dataclass
class Outcome:
    alerts: list[Alert]  # every alert this run found (new or merged), most severe first
    raised: list[Alert]  # new, or more severe than before
    result: PackResult
    drafts: list[store.Draft]
    engine: str
    seconds: float


def events_uri(app: App, p: DetectionSettings) -> str:
    return p.events_uri or str(app.home.events / "events")


def drafts_for(
    result: PackResult,
    p: DetectionSettings,
    window: Window,
    suppressions: dict[tuple[str, str], float] | None = None,
) -> list[store.Draft]:
    """Hits + anomaly scores → episodes (pure: the DuckDB/Spark equality test compares this)."""
    days = score_days(result.feature_table, p, window.report_dayno)
    hits: list[Hit] = [*result.hits, *anomaly_hits(days, p)]
    if suppressions:
        hits = store.suppress(hits, suppressions, p.suppress_growth)
    return store.episodes(hits, days, p)


def evaluate(
    ref: Reference,
    p: DetectionSettings,
    window: Window,
    *,
    engine: str,
    settings: Any,
    events: str | None,
    home: Any = None,
) -> PackResult:
    eng = open_engine(engine, settings=settings, detect=p, home=home)
    try:
        return run_pack(eng, ref, p, window, events_uri=events)
    finally:
        eng.close()


def detect(
    app: App,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    engine: str | None = None,
    p: DetectionSettings | None = None,
    actor: str = "phiguard:detect",
) -> Outcome:
    if since and until and until <= since:
        raise UsageError("--until must be after --since")
    p = p or DetectionSettings()
    name = engine or p.engine or app.settings.engine
    t0 = time.perf_counter()
    started = app.clock.now()
    ref = from_app(app, p)
    window = Window(since, until, p.baseline_days, app.settings.timezone)
    result = evaluate(
        ref,
        p,
        window,
        engine=name,
        settings=app.settings,
        events=events_uri(app, p),
        home=app.home.root,
    )
    with app.session() as s:
        sup = store.active_suppressions(s, app.clock.now())
    drafts = drafts_for(result, p, window, sup)
    touched, raised = store.save(app, drafts, p, origin="batch", actor=actor)
    if raised:
        from phiguard.detection.sinks import deliver

        deliver(app, raised, p)
    seconds = time.perf_counter() - t0
    with app.session() as s:
        s.add(
            DetectionRun(
                engine=name,
                since=since,
                until=until,
                started_at=started,
                seconds=round(seconds, 3),
                hits=len(result.hits),
                alerts=len(touched),
                explained_share=result.explain.get("explained_share"),
            )
        )
    touched = sorted({a.alert_id: a for a in touched}.values(), key=store.sort_key)
    return Outcome(touched, raised, result, drafts, name, seconds)
