"""The signed-in account's activity: spend and tokens per day, per model, per key and per inbound API,
and what the response cache saved; its generations, latest first (of one model or API when asked), and
one generation in detail (its attempt chain, tokens, cost, latency)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from routeway.web import queries, series
from routeway.web.core import PageError

if TYPE_CHECKING:
    from routeway.api.http import Response
    from routeway.services import Services
    from routeway.web.dashboard import Ctx, Dashboard

RANGES = {"7": "7 days", "30": "30 days", "90": "90 days"}
# the inbound APIs a generation may come by (its record's ``api``), as the dashboard names them
APIS = {"chat": "Chat completions", "messages": "Anthropic Messages", "responses": "OpenAI Responses",
        "completions": "Text completions", "embeddings": "Embeddings"}
PAGE_SIZE = 50


def routes(dashboard: Dashboard) -> list[tuple[str, str, Any]]:
    services = dashboard.services
    store = services.store

    async def activity(ctx: Ctx) -> Response:
        account_id = ctx.account_scope()
        span = ctx.query.get("days", "30")
        if span not in RANGES:
            span = "30"
        days = series.day_range(ctx.now_ms, int(span))
        since = days[0] * queries.DAY_MS
        per_day = await queries.account_days(store, account_id, since)
        charts = series.daily(per_day, days, {"spend": (3, "Spend (USD)"), "tokens": (1, "Tokens")},
                              scale={"spend": 1e-9})
        by_model = await queries.account_by(store, "model", account_id, since)
        by_key = await queries.account_by(store, "key_hash", account_id, since)
        by_api = await queries.account_by(store, "api", account_id, since)
        key_names = {u.name: (key.name, key.label) if (key := services.accounts.key(u.name)) else (u.name[:12], "")
                     for u in by_key}
        totals = {"spend": sum(u.cost for u in by_model), "tokens": sum(u.tokens for u in by_model),
                  "requests": sum(u.requests for u in by_model)}
        totals["cache_hits"], saved_nano = await queries.account_cache_savings(store, account_id, since)
        totals["cache_saved"] = saved_nano / 1e9
        names = {m.id: m.name for m in services.catalog.models.values()}
        return ctx.render("activity.html", span=span, ranges=RANGES, charts=charts, by_model=by_model,
                          by_key=by_key, by_api=by_api, apis=APIS, key_names=key_names, totals=totals, names=names,
                          balance=_balance(services, account_id))

    async def generation_list(ctx: Ctx) -> Response:
        account_id = ctx.account_scope()
        page_text = ctx.query.get("page", "1")
        # ASCII digits, at most 6: "²" passes isdigit() but not int(), and a page past SQLite's integers overflows
        page = int(page_text) if re.fullmatch(r"[0-9]{1,6}", page_text) and int(page_text) > 0 else 1
        model = ctx.query.get("model") or None
        api = ctx.query.get("api") or None
        if api is not None and api not in APIS:
            raise PageError(400, f"Unknown API {api[:40]!r}: one of {', '.join(APIS)}.")
        rows = await queries.generations(store, account_id, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE, model, api)
        return ctx.render("generations.html", rows=rows[:PAGE_SIZE], page=page, more=len(rows) > PAGE_SIZE,
                          model=model, api=api, apis=APIS, key_names=_key_names(services, rows))

    async def generation_detail(ctx: Ctx) -> Response:
        account_id = ctx.account_scope()
        found = await queries.generation(store, account_id, ctx.params["id"])
        if found is None:
            raise PageError(404, f"No generation {ctx.params['id']} in this account.")
        return ctx.render("generation.html", g=found, key_names=_key_names(services, [found]))

    return [("GET", "/activity", activity), ("GET", "/activity/generations", generation_list),
            ("GET", "/activity/generations/{id}", generation_detail)]


def _balance(services: Services, account_id: str | None) -> dict[str, float] | None:
    account = services.accounts.get(account_id or "")
    if account is None:
        return None
    return {"credits": account.credits / 1e9, "usage": account.usage / 1e9,
            "available": max(0, account.available) / 1e9}


def _key_names(services: Services, rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The names of the keys (deleted ones too) that made these generations."""
    keys = (services.accounts.key(row["api_key_hash"]) for row in rows)
    return {key.hash: key.name for key in keys if key is not None}
