"""Usage aggregates over the generations, for the dashboard: tokens, requests and cost by model, app, key
and day. Portable SQL run off the event loop; times are ms (``created_at``), a day is
``created_at / 86400000`` (integer division on SQLite and PostgreSQL alike)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from routeway.store.base import Store

DAY_MS = 86_400_000
TOKENS = "tokens_prompt + tokens_completion"
APP = "COALESCE(http_referer, app_title)"
GROUPINGS = ("model", "key_hash", "provider_name", "api")  # what an account's usage may be grouped by


@dataclass(frozen=True, slots=True)
class Usage:
    """One group of generations: its name, tokens, requests and cost (nano-USD)."""

    name: str
    tokens: int
    requests: int
    cost_nano: int
    title: str | None = None  # for apps: the X-Title seen with this referer

    @property
    def cost(self) -> float:
        return self.cost_nano / 1e9


Day = tuple[int, int, int, int]  # (day, tokens, requests, cost nano-USD)


@dataclass(frozen=True, slots=True)
class Activity:
    """One account's generations of one UTC day on one endpoint (model via provider)."""

    day: int  # days since the epoch
    model: str
    provider_slug: str
    provider_name: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    cost_nano: int


def _usage(rows: list[tuple[Any, ...]]) -> list[Usage]:
    return [Usage(str(r[0]), int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), *(r[4:5] or ())) for r in rows]


def _days(rows: list[tuple[Any, ...]]) -> list[Day]:
    return [(int(d), int(t or 0), int(n or 0), int(c or 0)) for d, t, n, c in rows]


def _scope(account_id: str | None) -> tuple[str, tuple[Any, ...]]:
    """Restrict to one account; None (the operator looking at everything) restricts nothing."""
    return ("account_id = ? AND ", (account_id,)) if account_id is not None else ("", ())


class UsageQueries:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- catalog-wide (public pages) -------------------------------------------------------------
    async def tokens_by_model(self, since_ms: int) -> dict[str, int]:
        rows = await self.store.fetch(f"SELECT model, SUM({TOKENS}) FROM generations WHERE created_at >= ?"
                                      " GROUP BY model", (since_ms,))
        return {model: int(tokens or 0) for model, tokens in rows}

    async def model_tokens(self, model: str, since_ms: int) -> int:
        rows = await self.store.fetch(f"SELECT SUM({TOKENS}) FROM generations WHERE model = ? AND created_at >= ?",
                                      (model, since_ms))
        return int(rows[0][0] or 0) if rows else 0

    async def top_models(self, since_ms: int, limit: int = 20) -> list[Usage]:
        return _usage(await self.store.fetch(
            f"SELECT model, SUM({TOKENS}) AS t, COUNT(*), SUM(total_cost_nano) FROM generations"
            " WHERE created_at >= ? GROUP BY model ORDER BY t DESC LIMIT ?", (since_ms, limit)))

    async def top_apps(self, since_ms: int, model: str | None = None, limit: int = 20) -> list[Usage]:
        where, params = ("model = ? AND ", (model,)) if model else ("", ())
        return _usage(await self.store.fetch(
            f"SELECT {APP} AS app, SUM({TOKENS}) AS t, COUNT(*), SUM(total_cost_nano), MAX(app_title) FROM"
            f" generations WHERE {where}created_at >= ? AND {APP} IS NOT NULL GROUP BY {APP} ORDER BY t DESC LIMIT ?",
            (*params, since_ms, limit)))

    async def model_by_api(self, model: str, since_ms: int) -> list[Usage]:
        """One model's usage per inbound API, most tokens first (the model index bounds the scan)."""
        return _usage(await self.store.fetch(
            f"SELECT api, SUM({TOKENS}) AS t, COUNT(*), SUM(total_cost_nano) FROM generations"
            " WHERE model = ? AND created_at >= ? GROUP BY api ORDER BY t DESC, api", (model, since_ms)))

    async def model_days(self, model: str, since_ms: int) -> list[Day]:
        return _days(await self.store.fetch(
            f"SELECT created_at / {DAY_MS} AS d, SUM({TOKENS}), COUNT(*), SUM(total_cost_nano) FROM generations"
            f" WHERE model = ? AND created_at >= ? GROUP BY created_at / {DAY_MS} ORDER BY d", (model, since_ms)))

    async def models_days(self, models: Sequence[str], since_ms: int) -> list[tuple[str, int, int]]:
        """(model, day, tokens) for the given models: the rankings chart."""
        if not models:
            return []
        marks = ", ".join("?" * len(models))
        rows = await self.store.fetch(
            f"SELECT model, created_at / {DAY_MS} AS d, SUM({TOKENS}) FROM generations"
            f" WHERE created_at >= ? AND model IN ({marks}) GROUP BY model, created_at / {DAY_MS} ORDER BY d",
            (since_ms, *models))
        return [(m, int(d), int(t or 0)) for m, d, t in rows]

    # ---- one account (or, for the operator, all) ---------------------------------------------------
    async def account_days(self, account_id: str | None, since_ms: int) -> list[Day]:
        where, params = _scope(account_id)
        return _days(await self.store.fetch(
            f"SELECT created_at / {DAY_MS} AS d, SUM({TOKENS}), COUNT(*), SUM(total_cost_nano) FROM generations"
            f" WHERE {where}created_at >= ? GROUP BY created_at / {DAY_MS} ORDER BY d", (*params, since_ms)))

    async def key_charge_days(self, account_id: str | None, since_ms: int) -> list[tuple[str, int, int]]:
        """(key hash, day, nano-USD charged) from the ledger: what every process charged (a guardrail budget's
        spend, charted on the Guardrails page)."""
        where, params = _scope(account_id)
        rows = await self.store.fetch(
            f"SELECT key_hash, created_at / {DAY_MS} AS d, SUM(-amount_nano) FROM ledger"
            f" WHERE {where}kind = 'charge' AND key_hash IS NOT NULL AND created_at >= ?"
            f" GROUP BY key_hash, created_at / {DAY_MS}", (*params, since_ms))
        return [(str(k), int(d), int(n or 0)) for k, d, n in rows]

    async def key_charges_before(self, account_id: str | None, before_ms: int) -> dict[str, int]:
        """Key hash -> nano-USD charged before ``before_ms`` (a lifetime budget's spend before the chart)."""
        where, params = _scope(account_id)
        rows = await self.store.fetch(
            f"SELECT key_hash, SUM(-amount_nano) FROM ledger WHERE {where}kind = 'charge' AND key_hash IS NOT NULL"
            f" AND created_at < ? GROUP BY key_hash", (*params, before_ms))
        return {str(k): int(n or 0) for k, n in rows}

    async def account_cache_savings(self, account_id: str | None, since_ms: int) -> tuple[int, int]:
        """(response cache hits, nano-USD they saved): what the answers cost when they were first made."""
        where, params = _scope(account_id)
        rows = await self.store.fetch(f"SELECT COUNT(*), SUM(cache_saved_nano) FROM generations WHERE {where}"
                                      "cache_hit = 1 AND created_at >= ?", (*params, since_ms))
        return (int(rows[0][0] or 0), int(rows[0][1] or 0)) if rows else (0, 0)

    async def account_by(self, column: str, account_id: str | None, since_ms: int) -> list[Usage]:
        """Usage grouped by one of GROUPINGS, most spent first."""
        if column not in GROUPINGS:
            raise ValueError(f"cannot group usage by {column!r}; one of {', '.join(GROUPINGS)}")
        where, params = _scope(account_id)
        return _usage(await self.store.fetch(
            f"SELECT {column}, SUM({TOKENS}) AS t, COUNT(*), SUM(total_cost_nano) AS c FROM generations"
            f" WHERE {where}created_at >= ? GROUP BY {column} ORDER BY c DESC, t DESC", (*params, since_ms)))

    async def activity(self, account_id: str, first_day: int, last_day: int,
                       key_hash: str | None = None) -> list[Activity]:
        """Per UTC day (``first_day`` … ``last_day``, days since the epoch), model and endpoint; newest
        day first, then most spent."""
        where, params = ("key_hash = ? AND ", (key_hash,)) if key_hash is not None else ("", ())
        rows = await self.store.fetch(
            f"SELECT created_at / {DAY_MS} AS d, model, provider_slug, MAX(provider_name), COUNT(*),"
            " SUM(tokens_prompt), SUM(tokens_completion), SUM(COALESCE(native_tokens_reasoning, 0)),"
            " SUM(COALESCE(native_tokens_cached, 0)),"
            " SUM(total_cost_nano) AS c FROM generations"
            f" WHERE account_id = ? AND {where}created_at >= ? AND created_at < ?"
            f" GROUP BY created_at / {DAY_MS}, model, provider_slug ORDER BY d DESC, c DESC, model",
            (account_id, *params, first_day * DAY_MS, (last_day + 1) * DAY_MS))
        return [Activity(int(d), m, slug, name, int(n or 0), int(p or 0), int(c or 0), int(r or 0), int(k or 0),
                         int(cost or 0))
                for d, m, slug, name, n, p, c, r, k, cost in rows]
