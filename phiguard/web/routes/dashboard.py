"""The dashboard: alerts over time, accesses by hour of day, top-risk accounts and vendors,
open incidents with their clocks — as server-drawn SVG charts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from phiguard.web import charts
from phiguard.web.auth.roles import Perm
from phiguard.web.deps import ConsoleDep, Page, Principal
from phiguard.web.readmodels.dashboard import SEVERITIES, Dashboard, DashboardCache

router = APIRouter(include_in_schema=False)
SEV_COLORS = {"critical": "#b3261e", "high": "#d9480f", "medium": "#c08a00", "low": "#4a7bd0"}


def cache(console: ConsoleDep) -> DashboardCache:
    found = console.extras.get("dashboard")
    if found is None:
        found = console.extras["dashboard"] = DashboardCache(console.app)
    return found


def drawn(console: ConsoleDep, d: Dashboard) -> tuple[Markup, Markup, Markup, Markup]:
    """The four charts of one snapshot of the figures, drawn once (the snapshot changes at
    most every refresh; every viewer sees the same charts)."""
    hit = console.extras.get("dashboard_charts")
    if hit is not None and hit[0] is d:
        return hit[1]
    labels = [day[5:] for day in d.days]
    alerts_chart = charts.line_chart(
        labels,
        [charts.Series(sev, d.alerts_by_day[sev], color=SEV_COLORS[sev]) for sev in SEVERITIES],
        title="Alerts per day by severity",
        label_every=2,
    )
    night = [h for h in range(24) if h < 6]
    hour_chart = charts.bar_chart(
        [f"{h:02d}" for h in range(24)],
        d.by_hour,
        title="Accesses by hour of day (last 7 days)",
        highlight=[h for h in night if d.by_hour[h]],
        label_every=2,
    )
    accounts_chart = charts.hbar_chart(
        [a for a, _, _ in d.top_accounts],
        [s for _, s, _ in d.top_accounts],
        title="Top-risk accounts (highest open alert score)",
    )
    vendors_chart = charts.hbar_chart(
        [v for v, _, _ in d.top_vendors],
        [s for _, s, _ in d.top_vendors],
        title="Top-risk vendors (highest open alert score)",
        colors=["#d9480f"] * len(d.top_vendors),
    )
    charts_ = (alerts_chart, hour_chart, accounts_chart, vendors_chart)
    console.extras["dashboard_charts"] = (d, charts_)
    return charts_


@router.get("/")
async def dashboard(
    request: Request, console: ConsoleDep, user: Annotated[Principal, Depends(Page(Perm.DASHBOARD))]
) -> Response:
    # async on purpose: once warm everything here is in memory (the figures refresh in a
    # background thread), so the event loop answers without a thread hand-off
    figures = cache(console)
    d = figures.get() if figures.warm else await run_in_threadpool(figures.get)
    alerts_chart, hour_chart, accounts_chart, vendors_chart = drawn(console, d)
    return request.app.state.renderer.page(
        request,
        "dashboard.html",
        d=d,
        alerts_chart=alerts_chart,
        hour_chart=hour_chart,
        accounts_chart=accounts_chart,
        vendors_chart=vendors_chart,
        can_alerts=user.can(Perm.ALERTS_READ),
        can_incidents=user.can(Perm.INCIDENTS_READ),
    )
