"""GET /models' query as OpenRouter takes it (the openrouter SDK sends these): filters, a sort, a page.

Filters: ``q`` (in the id or name, any case), ``category`` (the catalog's ``categories`` of a model),
``supported_parameters`` (all of a comma list), ``input_modalities`` (all of a comma list),
``output_modalities`` (any of a comma list; default ``text``, ``all`` for every model — so embedding
models are listed only when asked for, as on OpenRouter), ``context`` (at least this many tokens),
``min_price`` / ``max_price`` (prompt price, USD per 1M tokens). Sorts: ``newest``, ``pricing-low-to-high``,
``pricing-high-to-low`` (prompt plus completion price), ``context-high-to-low``, ``throughput-high-to-low``
and ``latency-low-to-high`` (the best endpoint's p50 over 30 minutes; unmeasured last), ``most-popular`` and
``top-weekly`` (tokens served in the last 7 days); the benchmark sorts are accepted and keep the catalog's
order (no model has a score). A value outside these is a 400 naming the parameter.
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from routeway.catalog import ModelInfo
from routeway.errors import APIError
from routeway.store.usage import DAY_MS, UsageQueries

if TYPE_CHECKING:
    from routeway.api.http import Request
    from routeway.services import Services

CATEGORIES = ("programming", "roleplay", "marketing", "marketing/seo", "technology", "science", "translation",
              "legal", "finance", "health", "trivia", "academia")
INPUT_MODALITIES = ("text", "image", "audio", "file", "video")
OUTPUT_MODALITIES = ("text", "image", "embeddings", "audio", "video", "rerank", "decisions", "speech", "transcription",
                     "all")
# the benchmark sorts (Artificial Analysis indices, Design Arena ELO) put unscored models last: routeway has no
# scores, so they keep the catalog's order
SCORE_SORTS = ("intelligence-high-to-low", "coding-high-to-low", "agentic-high-to-low", "design-arena-elo-high-to-low")
SORTS = ("most-popular", "top-weekly", "newest", "pricing-low-to-high", "pricing-high-to-low", "context-high-to-low",
         "throughput-high-to-low", "latency-low-to-high", *SCORE_SORTS)
_TTFT, _TPS = 1, 2  # sample fields of an endpoint's health


def _bad(param: str, message: str) -> APIError:
    return APIError(400, f"Invalid request: query parameter `{param}` {message}", metadata={"param": param})


def _listed(request: Request, param: str, valid: tuple[str, ...] | None = None) -> list[str]:
    values = [v.strip().lower() for v in request.query.get(param, "").split(",") if v.strip()]
    if valid is not None:
        unknown = [v for v in values if v not in valid]
        if unknown:
            raise _bad(param, f"takes {', '.join(valid)}; not {', '.join(unknown)}")
    return values


def _price(request: Request, param: str) -> Decimal | None:
    text = request.query.get(param)
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _bad(param, "must be a price in USD per 1M tokens, such as 0.5") from None
    if not value.is_finite() or value < 0 or value > 1_000_000:
        raise _bad(param, "must be a price from 0 to 1,000,000 USD per 1M tokens")
    return value


def matching(services: Services, request: Request) -> list[ModelInfo]:
    """The catalog's models that pass every filter of the query, in catalog order."""
    q = request.query.get("q", "").strip().lower()
    category = request.query.get("category", "").strip().lower() or None
    if category is not None and category not in CATEGORIES:
        raise _bad("category", f"takes {', '.join(CATEGORIES)}; not {category[:40]!r}")
    parameters = _listed(request, "supported_parameters")
    inputs = _listed(request, "input_modalities", INPUT_MODALITIES)
    outputs = _listed(request, "output_modalities", OUTPUT_MODALITIES) or ["text"]
    context = request.query_int("context", 0)
    low, high = _price(request, "min_price"), _price(request, "max_price")
    found = []
    for model in services.catalog.models.values():
        if q and q not in model.id.lower() and q not in model.name.lower():
            continue
        if category is not None and category not in model.categories:
            continue
        if not all(p in model.supported_parameters for p in parameters):
            continue
        if not all(m in model.input_modalities for m in inputs):
            continue
        if "all" not in outputs and not any(m in model.output_modalities for m in outputs):
            continue
        if model.context_length < context:
            continue
        if (low is not None and model.prompt_price < low) or (high is not None and model.prompt_price > high):
            continue
        found.append(model)
    return found


async def sorted_models(services: Services, request: Request, models: list[ModelInfo]) -> list[ModelInfo]:
    sort = request.query.get("sort")
    if sort is None:
        return models
    if sort not in SORTS:
        raise _bad("sort", f"takes {', '.join(SORTS)}; not {sort[:40]!r}")
    if sort in SCORE_SORTS:
        return models
    if sort == "newest":
        return sorted(models, key=lambda m: -m.created)
    if sort.startswith("pricing-"):
        return sorted(models, key=lambda m: m.prompt_price + m.completion_price, reverse=sort.endswith("high-to-low"))
    if sort == "context-high-to-low":
        return sorted(models, key=lambda m: -m.context_length)
    if sort in ("most-popular", "top-weekly"):
        tokens = await UsageQueries(services.store).tokens_by_model(int(time.time() * 1000) - 7 * DAY_MS)
        return sorted(models, key=lambda m: -tokens.get(m.id, 0))
    now = time.time()

    def best(model: ModelInfo, which: int) -> float | None:
        values = [stats["p50"] for e in services.catalog.endpoints_for(model.id)
                  if (stats := services.health.of(e.key).percentiles(which, 1800, now)) is not None]
        if not values:
            return None
        return max(values) if which == _TPS else min(values)

    if sort == "throughput-high-to-low":
        return sorted(models, key=lambda m: -(best(m, _TPS) or -1.0))
    return sorted(models, key=lambda m: t if (t := best(m, _TTFT)) is not None else float("inf"))
