"""What the dashboard reads from the store, shaped for its templates. The SQL lives in the store's
repositories (``store/usage.py``, ``store/generations.py``, ``store/endpoint_minutes.py``); this module
adds the views: the API's generation view with the raw ms time and nano-USD cost."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from routeway.api.views import generation_view
from routeway.store.base import Store
from routeway.store.endpoint_minutes import EndpointMinuteRepository
from routeway.store.generations import GenerationRepository
from routeway.store.usage import DAY_MS, Day, Usage, UsageQueries

__all__ = ["DAY_MS", "Usage", "account_by", "account_cache_savings", "account_days", "endpoint_minutes",
           "generation", "generations", "key_charge_days", "key_charges_before",
           "model_by_api", "model_days", "model_tokens", "models_days", "tokens_by_model", "top_apps", "top_models"]


async def tokens_by_model(store: Store, since_ms: int) -> dict[str, int]:
    return await UsageQueries(store).tokens_by_model(since_ms)


async def model_tokens(store: Store, model: str, since_ms: int) -> int:
    return await UsageQueries(store).model_tokens(model, since_ms)


async def top_models(store: Store, since_ms: int, limit: int = 20) -> list[Usage]:
    return await UsageQueries(store).top_models(since_ms, limit)


async def top_apps(store: Store, since_ms: int, model: str | None = None, limit: int = 20) -> list[Usage]:
    return await UsageQueries(store).top_apps(since_ms, model, limit)


async def model_by_api(store: Store, model: str, since_ms: int) -> list[Usage]:
    """One model's tokens and requests per inbound API."""
    return await UsageQueries(store).model_by_api(model, since_ms)


async def model_days(store: Store, model: str, since_ms: int) -> list[Day]:
    """(day, tokens, requests, cost nano-USD) per day with traffic for one model."""
    return await UsageQueries(store).model_days(model, since_ms)


async def models_days(store: Store, models: Sequence[str], since_ms: int) -> list[tuple[str, int, int]]:
    return await UsageQueries(store).models_days(models, since_ms)


async def endpoint_minutes(store: Store, endpoints: Sequence[str], since_minute: int) -> list[tuple[Any, ...]]:
    """(endpoint, minute, ok, errors, ttft_p50_ms, tps_p50) persisted by the health log."""
    rows = await EndpointMinuteRepository(store).of_endpoints(endpoints, since_minute)
    return [(r.endpoint, r.minute, r.ok, r.errors, r.ttft_p50_ms, r.tps_p50) for r in rows]


async def account_days(store: Store, account_id: str | None, since_ms: int) -> list[Day]:
    return await UsageQueries(store).account_days(account_id, since_ms)


async def key_charge_days(store: Store, account_id: str | None, since_ms: int) -> list[tuple[str, int, int]]:
    return await UsageQueries(store).key_charge_days(account_id, since_ms)


async def key_charges_before(store: Store, account_id: str | None, before_ms: int) -> dict[str, int]:
    return await UsageQueries(store).key_charges_before(account_id, before_ms)


async def account_cache_savings(store: Store, account_id: str | None, since_ms: int) -> tuple[int, int]:
    """(response cache hits, nano-USD saved)."""
    return await UsageQueries(store).account_cache_savings(account_id, since_ms)


async def account_by(store: Store, column: str, account_id: str | None, since_ms: int) -> list[Usage]:
    """Usage grouped by ``model``, ``key_hash``, ``provider_name`` or ``api``, most spent first."""
    return await UsageQueries(store).account_by(column, account_id, since_ms)


async def generations(store: Store, account_id: str | None, limit: int, offset: int,
                      model: str | None = None, api: str | None = None) -> list[dict[str, Any]]:
    rows = await GenerationRepository(store).page(account_id, limit, offset, model, api)
    return [_with_ms(row) for row in rows]


async def generation(store: Store, account_id: str | None, generation_id: str) -> dict[str, Any] | None:
    row = await GenerationRepository(store).get(generation_id, account_id)
    return _with_ms(row) if row is not None else None


def _with_ms(row: dict[str, Any]) -> dict[str, Any]:
    """The API's generation view plus the raw millisecond time and nano-USD cost for the templates."""
    view = generation_view(row)
    view["created_ms"] = row["created_at"]
    view["cost_nano"] = row["total_cost_nano"]
    return view
