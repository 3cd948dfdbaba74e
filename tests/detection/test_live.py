"""The live path: events fed as they arrive raise the alert while the export still runs, the
sinks get it, containment disables the account, and the batch run later completes the same
alert instead of repeating it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from phiguard.app import App
from phiguard.detection import alerts
from phiguard.detection.sinks import MockSink
from phiguard.detection.snapshot import to_us
from phiguard.detection.watch import Watcher
from phiguard.storage.importer import import_file
from phiguard.storage.models import Account
from tests.detection import world as W

NIGHT = W.at(W.LAST, 0, 0)


def _load(app: App, world_dir: Path) -> None:
    for kind in ("patients", "accounts", "vendors", "grants", "encounters"):
        import_file(app, kind, world_dir / f"{kind}.csv")


def _night(hospital: W.World) -> pa.Table:
    t = hospital.event_table()
    return t.filter(pc.greater_equal(t["ts"], pa.scalar(NIGHT, pa.timestamp("us", tz="UTC"))))


def _watcher(app: App, world_dir: Path, clock) -> Watcher:  # type: ignore[no-untyped-def]
    clock.at = W.at(W.LAST, 1, 30)  # the night of the export: containment happens "now"
    _load(app, world_dir)
    sink = MockSink()
    w = Watcher.start(
        app,
        W.settings(contain="account", sink_min_severity="high"),
        sinks=[sink],
        baseline_before=NIGHT,
        events_uri=str(world_dir / "events.parquet"),
    )
    return w


@pytest.fixture
def watcher(app: App, world_dir: Path, clock) -> Watcher:  # type: ignore[no-untyped-def]
    """On SQLite and PostgreSQL: containment and alert storage write to the database."""
    w = _watcher(app, world_dir, clock)
    yield w
    w.close()


@pytest.fixture
def sqlite_watcher(sqlite_app: App, world_dir: Path, clock) -> Watcher:  # type: ignore[no-untyped-def]
    w = _watcher(sqlite_app, world_dir, clock)
    yield w
    w.close()


def test_export_is_caught_while_it_runs_and_contained(
    app: App, watcher: Watcher, hospital: W.World
) -> None:
    night = _night(hospital)
    export = night.filter(pc.equal(night["account_id"], "vx-eng-07"))
    critical_at = None
    for i in range(0, export.num_rows, 100):
        for r in watcher.feed(export.slice(i, 100)):
            if r.alert.severity == "critical" and critical_at is None:
                critical_at = i + 100
                raised = r
    # the grant allows 50 rows; the export is critical once it passes 1,000 (of 1,500)
    assert critical_at is not None and critical_at <= 1100
    assert raised.alert.account_id == "vx-eng-07" and raised.alert.vendor_id == "V012"
    assert raised.contained and "disabled" in raised.contained
    with app.session() as s:
        assert s.get(Account, "vx-eng-07").status == "disabled"
    sent = watcher.sinks[0].sent  # type: ignore[attr-defined]
    assert any(a["severity"] == "critical" and a["account_id"] == "vx-eng-07" for a in sent)
    stored = alerts.list_alerts(app, account_id="vx-eng-07")
    assert len(stored) == 1 and stored[0].origin == "live"
    assert "the grant covers HKWC only, 50 rows at most" in " ".join(stored[0].reasons)


def test_relationship_rules_fire_live(sqlite_watcher: Watcher, hospital: W.World) -> None:
    watcher = sqlite_watcher
    night = _night(hospital)
    raised = []
    for i in range(0, night.num_rows, 500):
        raised += watcher.feed(night.slice(i, 500))
    found = {(r.alert.account_id, rule) for r in raised for rule in r.alert.hits}
    for rule in (
        "vip_no_relationship",
        "self_access",
        "coworker",
        "family",
        "denied_burst",
        "dormant_reactivated",
    ):
        assert (W.PLANTED[rule], rule) in found, rule
    # the ordinary staff of that morning raised nothing
    assert not {a for a, _ in found} & {"d01", "d03", "d04", "e01", "svc-nightly"}


def test_batch_run_completes_the_live_alert(
    sqlite_app: App, sqlite_watcher: Watcher, hospital: W.World, world_dir: Path
) -> None:
    from phiguard.detection import service

    app, watcher = sqlite_app, sqlite_watcher
    night = _night(hospital)
    watcher.feed(night.filter(pc.equal(night["account_id"], "vx-eng-07")))
    live = alerts.list_alerts(app, account_id="vx-eng-07")
    assert len(live) == 1
    p = W.settings(events_uri=str(world_dir / "events.parquet"))
    out = service.detect(app, since=W.at(30, 0), p=p)
    after = alerts.list_alerts(app, account_id="vx-eng-07")
    assert [a.alert_id for a in after] == [live[0].alert_id]
    assert {"bulk_export", "outside_grant", "daily_volume", "rare_hour"} <= set(after[0].hits)
    assert live[0].alert_id in {a.alert_id for a in out.alerts}
    assert to_us(after[0].first_ts) == to_us(W.at(W.LAST, 1, 12))
