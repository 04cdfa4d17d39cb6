"""Rankings (public): models and apps by tokens over the last day, week or month, from this server's traffic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routeway.web import queries, series

if TYPE_CHECKING:
    from routeway.api.http import Response
    from routeway.web.dashboard import Ctx, Dashboard

PERIODS = {"day": (1, "Today"), "week": (7, "This week"), "month": (30, "This month")}
CHART_MODELS = 6


def routes(dashboard: Dashboard) -> list[tuple[str, str, Any]]:
    services = dashboard.services

    async def rankings(ctx: Ctx) -> Response:
        period = ctx.query.get("period", "week")
        if period not in PERIODS:
            period = "week"
        days, _ = PERIODS[period]
        since = ctx.now_ms - days * queries.DAY_MS
        models = await queries.top_models(services.store, since, limit=50)
        apps = await queries.top_apps(services.store, since, limit=50)
        names = {m.id: m.name for m in services.catalog.models.values()}
        span = series.day_range(ctx.now_ms, max(days, 7))
        leaders = [m.name for m in models[:CHART_MODELS]]
        rows = await queries.models_days(services.store, leaders, span[0] * queries.DAY_MS)
        chart = series.stacked_days(rows, leaders, span, lambda m: names.get(m, m))
        return ctx.render("rankings.html", period=period, periods=PERIODS, models=models, apps=apps, names=names,
                          chart=chart, total_tokens=sum(m.tokens for m in models))

    return [("GET", "/rankings", rankings)]
