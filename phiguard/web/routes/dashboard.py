"""The dashboard: alerts over time, accesses by hour of day, top-risk accounts and vendors,
open incidents with their clocks — as server-drawn SVG charts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from phiguard.web import charts
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import ConsoleDep, Page, Principal
from phiguard.web.readmodels.dashboard import SEVERITIES, DashboardCache

router = APIRouter(include_in_schema=False)
SEV_COLORS = {"critical": "#b3261e", "high": "#d9480f", "medium": "#c08a00", "low": "#4a7bd0"}


def cache(console: ConsoleDep) -> DashboardCache:
    found = console.extras.get("dashboard")
    if found is None:
        found = console.extras["dashboard"] = DashboardCache(console.app)
    return found


@router.get("/")
def dashboard(request: Request, console: ConsoleDep,
              user: Annotated[Principal, Depends(Page(Perm.DASHBOARD))]) -> Response:
    d = cache(console).get()
    labels = [day[5:] for day in d.days]
    alerts_chart = charts.line_chart(
        labels, [charts.Series(sev, d.alerts_by_day[sev], color=SEV_COLORS[sev])
                 for sev in SEVERITIES],
        title="Alerts per day by severity", label_every=2)
    night = [h for h in range(24) if h < 6]
    hour_chart = charts.bar_chart([f"{h:02d}" for h in range(24)], d.by_hour,
                                  title="Accesses by hour of day (last 7 days)",
                                  highlight=[h for h in night if d.by_hour[h]], label_every=2)
    accounts_chart = charts.hbar_chart([a for a, _, _ in d.top_accounts],
                                       [s for _, s, _ in d.top_accounts],
                                       title="Top-risk accounts (highest open alert score)")
    vendors_chart = charts.hbar_chart([v for v, _, _ in d.top_vendors],
                                      [s for _, s, _ in d.top_vendors],
                                      title="Top-risk vendors (highest open alert score)",
                                      colors=["#d9480f"] * len(d.top_vendors))
    return request.app.state.renderer.page(
        request, "dashboard.html", d=d, alerts_chart=alerts_chart, hour_chart=hour_chart,
        accounts_chart=accounts_chart, vendors_chart=vendors_chart,
        can_alerts=user.can(Perm.ALERTS_READ), can_incidents=user.can(Perm.INCIDENTS_READ))
