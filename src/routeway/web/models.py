"""Public pages: the home page, the model list with its filters, and one page per model with the seed
page's sections (overview, providers, performance, pricing, uptime, apps, activity, API)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from routeway.catalog import Endpoint, ModelInfo
from routeway.ledger.money import nano_per_million
from routeway.web import queries, series, snippets
from routeway.web.activity import APIS
from routeway.web.core import PageError, base_url

if TYPE_CHECKING:
    from routeway.api.http import Response
    from routeway.web.dashboard import Ctx, Dashboard

WEEK_MS = 7 * queries.DAY_MS
FILTER_PARAMETERS = ("tools", "reasoning", "response_format", "structured_outputs", "logprobs", "seed")
CONTEXT_CHOICES = (0, 8_192, 32_768, 128_000, 200_000, 1_000_000)


@dataclass(frozen=True, slots=True)
class ModelRow:
    model: ModelInfo
    endpoints: int
    weekly_tokens: int
    prompt_nano: int  # nano-USD per 1M tokens
    completion_nano: int


def routes(dashboard: Dashboard) -> list[tuple[str, str, Any]]:
    services = dashboard.services
    catalog = services.catalog

    async def rows(now_ms: int) -> list[ModelRow]:
        weekly = await queries.tokens_by_model(services.store, now_ms - WEEK_MS)
        out = [ModelRow(m, len(catalog.endpoints_for(m.id)), weekly.get(m.id, 0), nano_per_million(m.prompt_price),
                        nano_per_million(m.completion_price)) for m in catalog.models.values()]
        out.sort(key=lambda r: (-(r.endpoints > 0), -r.weekly_tokens, r.model.name.lower()))
        return out

    async def home(ctx: Ctx) -> Response:
        all_rows = await rows(ctx.now_ms)
        top = await queries.top_models(services.store, ctx.now_ms - WEEK_MS, limit=8)
        served = [r for r in all_rows if r.endpoints]
        return ctx.render("home.html", served=served[:12], served_count=len(served), model_count=len(all_rows),
                          top=top, names={m.id: m.name for m in catalog.models.values()},
                          provider_count=len(catalog.providers))

    async def list_models(ctx: Ctx) -> Response:
        wanted = _filters(ctx)
        every = await rows(ctx.now_ms)  # all rendered; those not matching hidden, so the page's script can refilter
        shown = {r.model.id for r in every if _matches(r, wanted)}
        return ctx.render("models.html", rows=every, shown=shown, total=len(catalog.models), filters=wanted,
                          parameters=FILTER_PARAMETERS, contexts=CONTEXT_CHOICES)

    async def model_page(ctx: Ctx) -> Response:
        model = catalog.get(f"{ctx.params['author']}/{ctx.params['slug']}")
        if model is None:
            raise PageError(404, f"No model {ctx.params['author']}/{ctx.params['slug']} in the catalog.")
        endpoints = catalog.endpoints_for(model.id)
        now = time.time()
        store = services.store
        days = series.day_range(ctx.now_ms, 30)
        by_day = await queries.model_days(store, model.id, days[0] * queries.DAY_MS)
        weekly = await queries.model_tokens(store, model.id, ctx.now_ms - WEEK_MS)
        since_minute = int(now // 60) - 72 * 60
        keys = list(dict.fromkeys(e.key for e in endpoints))
        history = series.endpoint_history(await queries.endpoint_minutes(store, keys, since_minute),
                                          services.health, keys, since_minute)
        labels = _labels(endpoints)
        recent = {k: {m: v for m, v in per.items() if m >= int(now // 60) - 24 * 60} for k, per in history.items()}
        charts = {
            **series.performance(recent, labels),
            "uptime": series.uptime(history, labels, now),
            **series.daily(by_day, days, {"tokens": (1, "Tokens"), "requests": (2, "Requests")}),
        }
        return ctx.render(
            "model.html", model=model, providers=[_provider(e, services, now) for e in endpoints],
            weekly_tokens=weekly, charts=charts, released_ms=model.created * 1000,
            apps=await queries.top_apps(store, ctx.now_ms - WEEK_MS, model=model.id),
            by_api=await queries.model_by_api(store, model.id, days[0] * queries.DAY_MS), apis=APIS,
            prompt_nano=nano_per_million(model.prompt_price), completion_nano=nano_per_million(model.completion_price),
            examples=_examples(model, base_url(ctx.request)), api_path=_api_path(model),
            parameters=snippets.parameters(model.supported_parameters))

    return [("GET", "/", home), ("GET", "/models", list_models), ("GET", "/models/{author}/{slug}", model_page)]


def _api_path(model: ModelInfo) -> str:
    """The route a model's requests take: chat completions unless its endpoints serve only another API."""
    if "chat" in model.apis:
        return "/api/v1/chat/completions"
    return "/api/v1/embeddings" if "embeddings" in model.apis else "/api/v1/completions"


def _examples(model: ModelInfo, base: str) -> list[tuple[str, str, str]]:
    path = _api_path(model)
    if path.endswith("embeddings"):
        return snippets.embedding_examples(base, model.id)
    if path == "/api/v1/completions":
        return snippets.completion_examples(base, model.id)
    return snippets.examples(base, model.id)


def _labels(endpoints: list[Endpoint]) -> dict[str, str]:
    """Health key → provider name; the upstream model is added when one provider serves it twice."""
    names = [e.provider.label for e in endpoints]
    return {e.key: (e.provider.label if names.count(e.provider.label) == 1
                   else f"{e.provider.label} ({e.upstream_model})")
            for e in endpoints}


def _provider(endpoint: Endpoint, services: Any, now: float) -> dict[str, Any]:
    health = services.health.endpoints.get(endpoint.key)
    latency = health.percentiles(1, 1800, now) if health else None
    throughput = health.percentiles(2, 1800, now) if health else None
    return {
        "endpoint": endpoint, "name": endpoint.provider.label, "slug": endpoint.tag,
        "latency": latency["p50"] if latency else None, "throughput": throughput["p50"] if throughput else None,
        "latency_all": latency, "throughput_all": throughput,
        "uptime": health.uptime(1800, now) if health else None,
        "uptime_day": health.uptime(86400, now) if health else None,
        "breaker": health.breaker.state if health else "closed", "status": health.status(now) if health else 0,
    }


def _filters(ctx: Ctx) -> dict[str, Any]:
    pairs = parse_qsl(ctx.request.scope.get("query_string", b"").decode("latin-1"))
    query = dict(pairs)
    return {
        "q": query.get("q", "").strip(),
        "min_context": _number(query.get("min_context"), int) or 0,
        "max_price": _number(query.get("max_price"), float),
        "params": [v for k, v in pairs if k == "param" and v in FILTER_PARAMETERS],
        "served": query.get("served") == "1",
    }


def _number(text: str | None, kind: type) -> Any:
    try:
        return kind(text) if text not in (None, "") else None
    except ValueError:
        return None


def _matches(row: ModelRow, wanted: dict[str, Any]) -> bool:
    model = row.model
    text = wanted["q"].lower()
    if text and text not in model.id.lower() and text not in model.name.lower():
        return False
    if model.context_length < wanted["min_context"]:
        return False
    if wanted["max_price"] is not None and row.prompt_nano / 1e9 > wanted["max_price"]:
        return False
    if wanted["served"] and not row.endpoints:
        return False
    return all(p in model.supported_parameters for p in wanted["params"])
