"""Every read the dashboard makes from the store: portable SQL with ``?`` placeholders, run off the event
loop through ``store.fetch``. Times are milliseconds (``created_at``) or minutes (``endpoint_minutes``);
a day is ``created_at / 86400000`` (integer division on SQLite and PostgreSQL alike)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from routeway.api.views import GENERATION_COLUMNS, generation_view
from routeway.store.base import Store

DAY_MS = 86_400_000
TOKENS = "tokens_prompt + tokens_completion"
APP = "COALESCE(http_referer, app_title)"


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


def _usage(rows: list[tuple[Any, ...]]) -> list[Usage]:
    return [Usage(str(r[0]), int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), *(r[4:5] or ())) for r in rows]


def _scope(account_id: str | None) -> tuple[str, tuple[Any, ...]]:
    """Restrict to one account; None (the operator looking at everything) restricts nothing."""
    return ("account_id = ? AND ", (account_id,)) if account_id is not None else ("", ())


# ---- catalog-wide (public pages) -----------------------------------------------------------------

async def tokens_by_model(store: Store, since_ms: int) -> dict[str, int]:
    rows = await store.fetch(f"SELECT model, SUM({TOKENS}) FROM generations WHERE created_at >= ? GROUP BY model",
                             (since_ms,))
    return {model: int(tokens or 0) for model, tokens in rows}


async def model_tokens(store: Store, model: str, since_ms: int) -> int:
    rows = await store.fetch(f"SELECT SUM({TOKENS}) FROM generations WHERE model = ? AND created_at >= ?",
                             (model, since_ms))
    return int(rows[0][0] or 0) if rows else 0


async def top_models(store: Store, since_ms: int, limit: int = 20) -> list[Usage]:
    return _usage(await store.fetch(
        f"SELECT model, SUM({TOKENS}) AS t, COUNT(*), SUM(total_cost_nano) FROM generations"
        " WHERE created_at >= ? GROUP BY model ORDER BY t DESC LIMIT ?", (since_ms, limit)))


async def top_apps(store: Store, since_ms: int, model: str | None = None, limit: int = 20) -> list[Usage]:
    where, params = ("model = ? AND ", (model,)) if model else ("", ())
    return _usage(await store.fetch(
        f"SELECT {APP} AS app, SUM({TOKENS}) AS t, COUNT(*), SUM(total_cost_nano), MAX(app_title) FROM generations"
        f" WHERE {where}created_at >= ? AND {APP} IS NOT NULL GROUP BY {APP} ORDER BY t DESC LIMIT ?",
        (*params, since_ms, limit)))


async def model_days(store: Store, model: str, since_ms: int) -> list[tuple[int, int, int, int]]:
    """(day, tokens, requests, cost nano-USD) per day with traffic for one model."""
    rows = await store.fetch(
        f"SELECT created_at / {DAY_MS} AS d, SUM({TOKENS}), COUNT(*), SUM(total_cost_nano) FROM generations"
        f" WHERE model = ? AND created_at >= ? GROUP BY created_at / {DAY_MS} ORDER BY d", (model, since_ms))
    return [(int(d), int(t or 0), int(n or 0), int(c or 0)) for d, t, n, c in rows]


async def models_days(store: Store, models: Sequence[str], since_ms: int) -> list[tuple[str, int, int]]:
    """(model, day, tokens) for the given models: the rankings chart."""
    if not models:
        return []
    marks = ", ".join("?" * len(models))
    rows = await store.fetch(
        f"SELECT model, created_at / {DAY_MS} AS d, SUM({TOKENS}) FROM generations"
        f" WHERE created_at >= ? AND model IN ({marks}) GROUP BY model, created_at / {DAY_MS} ORDER BY d",
        (since_ms, *models))
    return [(m, int(d), int(t or 0)) for m, d, t in rows]


async def endpoint_minutes(store: Store, endpoints: Sequence[str], since_minute: int) -> list[tuple[Any, ...]]:
    """(endpoint, minute, ok, errors, ttft_p50_ms, tps_p50) persisted by the health log."""
    if not endpoints:
        return []
    marks = ", ".join("?" * len(endpoints))
    return await store.fetch(
        "SELECT endpoint, minute, ok, errors, ttft_p50_ms, tps_p50 FROM endpoint_minutes"
        f" WHERE minute >= ? AND endpoint IN ({marks}) ORDER BY minute", (since_minute, *endpoints))


# ---- one account (or, for the operator, all) -------------------------------------------------------

async def account_days(store: Store, account_id: str | None, since_ms: int) -> list[tuple[int, int, int, int]]:
    where, params = _scope(account_id)
    rows = await store.fetch(
        f"SELECT created_at / {DAY_MS} AS d, SUM({TOKENS}), COUNT(*), SUM(total_cost_nano) FROM generations"
        f" WHERE {where}created_at >= ? GROUP BY created_at / {DAY_MS} ORDER BY d", (*params, since_ms))
    return [(int(d), int(t or 0), int(n or 0), int(c or 0)) for d, t, n, c in rows]


async def account_by(store: Store, column: str, account_id: str | None, since_ms: int) -> list[Usage]:
    """Usage grouped by ``model`` or ``key_hash``, most spent first."""
    assert column in ("model", "key_hash", "provider_name")
    where, params = _scope(account_id)
    return _usage(await store.fetch(
        f"SELECT {column}, SUM({TOKENS}) AS t, COUNT(*), SUM(total_cost_nano) AS c FROM generations"
        f" WHERE {where}created_at >= ? GROUP BY {column} ORDER BY c DESC, t DESC", (*params, since_ms)))


async def generations(store: Store, account_id: str | None, limit: int, offset: int,
                      model: str | None = None) -> list[dict[str, Any]]:
    where, params = _scope(account_id)
    if model:
        where, params = where + "model = ? AND ", (*params, model)
    rows = await store.fetch(
        f"SELECT {', '.join(GENERATION_COLUMNS)} FROM generations WHERE {where}1 = 1"
        " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", (*params, limit, offset))
    return [_with_ms(row) for row in rows]


async def generation(store: Store, account_id: str | None, generation_id: str) -> dict[str, Any] | None:
    where, params = _scope(account_id)
    rows = await store.fetch(f"SELECT {', '.join(GENERATION_COLUMNS)} FROM generations WHERE {where}id = ?",
                             (*params, generation_id))
    return _with_ms(rows[0]) if rows else None


def _with_ms(row: tuple[Any, ...]) -> dict[str, Any]:
    """The API's generation view plus the raw millisecond time and nano-USD cost for the templates."""
    view = generation_view(row)
    raw = dict(zip(GENERATION_COLUMNS, row))
    view["created_ms"] = raw["created_at"]
    view["cost_nano"] = raw["total_cost_nano"]
    return view
