"""The alert list's table, rendered once per change of the alerts rather than per request.

Loading every open alert through the ORM, converting each to its JSON form and rendering
the rows cost ~20 ms a request on a loaded machine; the list is polled by triage screens and
changes far less often than it is read. A cheap aggregate over the alerts table — count,
highest id, latest update, and sums over every column the list shows — serves as the
table's fingerprint: the rendered rows are reused while the fingerprint is unchanged, so a
triage verdict, a new or merged alert (from this process, another worker, the CLI or the
detection watcher) shows on the very next request. Only the user-independent table is
cached; the page around it (navigation, CSRF token) is rendered per user.
"""

from __future__ import annotations

import threading
from typing import Any

from markupsafe import Markup

from phiguard.app import App
from phiguard.detection import alerts as alerts_svc
from phiguard.detection.models import Alert

LIMIT = 500
_MAX_KEYS = 64  # (status, severity) pairs: a handful in practice


#: plain SQL, the same on SQLite and PostgreSQL, sent as is (no statement compilation)
_FINGERPRINT = (
    "SELECT count(*), max(id), max(updated_at), max(last_ts), min(first_ts), "
    "sum(patient_count), sum(score), sum(CASE WHEN status = 'open' THEN 1 ELSE 0 END), "
    "count(verdict), count(resolved_at), sum(length(rule)), sum(length(severity)), "
    "sum(length(status)), sum(length(CAST(reasons AS TEXT))), "
    "sum(length(coalesce(vendor_id, ''))) FROM " + Alert.__tablename__
)


def fingerprint(app: App) -> tuple[Any, ...]:
    with app.engine.connect() as conn:
        row = conn.exec_driver_sql(_FINGERPRINT).one()
    return tuple(row)


class AlertListCache:
    def __init__(self, app: App, renderer: Any) -> None:
        self.app = app
        self.renderer = renderer
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, str], tuple[tuple[Any, ...], Markup]] = {}

    def table(self, status: str, severity: str) -> Markup:
        """The rendered ``<section>`` of alerts for this filter (bad filters raise, as
        :func:`phiguard.detection.alerts.list_alerts` does)."""
        key = (status, severity)
        mark = fingerprint(self.app)
        with self._lock:
            hit = self._tables.get(key)
        if hit is not None and hit[0] == mark:
            return hit[1]
        rows = alerts_svc.list_alerts(
            self.app, status=status, severity=severity or None, limit=LIMIT
        )
        tz = self.app.settings.timezone
        # the template autoescapes every value: its output is safe HTML
        html = Markup(  # noqa: S704 - rendered by an autoescaping template, see above
            self.renderer.env.get_template("alerts_table.html").render(
                alerts=[alerts_svc.as_json(a, tz) for a in rows]
            )
        )
        with self._lock:
            if len(self._tables) >= _MAX_KEYS:
                self._tables.clear()
            self._tables[key] = (mark, html)
        return html
