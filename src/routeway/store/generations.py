"""Generation records in the store: one row per request that reached an upstream, written with its charge
in one group commit, read back by ``GET /generation`` and the dashboard (always scoped to one account,
except for the operator's view of everything)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from routeway.store.base import Op, Store

COLUMNS = ("id", "account_id", "key_hash", "model", "provider_name", "provider_slug", "upstream_model", "upstream_id",
           "http_referer", "app_title", "tokens_prompt", "tokens_completion", "native_tokens_prompt",
           "native_tokens_completion", "native_tokens_reasoning", "native_tokens_cached", "usage_estimated",
           "total_cost_nano", "latency_ms", "generation_time_ms", "finish_reason", "native_finish_reason", "streamed",
           "cancelled", "status", "error", "attempts", "created_at", "usage_capped", "usage_rejected",
           "api", "cache_hit", "cache_saved_nano")
# Idempotent, as the ledger's insert: a settlement retried after a commit whose answer was lost is written once
_INSERT = (f"INSERT INTO generations ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
           " ON CONFLICT (id) DO NOTHING")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM generations"


def _scope(account_id: str | None) -> tuple[str, tuple[Any, ...]]:
    """Restrict to one account; None (the operator looking at everything) restricts nothing."""
    return ("account_id = ? AND ", (account_id,)) if account_id is not None else ("", ())


class GenerationRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def insert(values: Sequence[Any]) -> Op:
        """``values`` in COLUMNS order (``attempts`` already JSON). A sequence, not a mapping: this runs once
        per request, and building a dict of 30 fields cost ten times the rest of it."""
        if len(values) != len(COLUMNS):
            raise ValueError(f"a generation has {len(COLUMNS)} columns, not {len(values)}")
        return (_INSERT, tuple(values))

    async def get(self, generation_id: str, account_id: str | None) -> dict[str, Any] | None:
        where, params = _scope(account_id)
        rows = await self.store.fetch(f"{_SELECT} WHERE {where}id = ?", (*params, generation_id))
        return dict(zip(COLUMNS, rows[0], strict=True)) if rows else None

    async def page(self, account_id: str | None, limit: int, offset: int,
                   model: str | None = None, api: str | None = None) -> list[dict[str, Any]]:
        """Newest first; of one model and one inbound API when they are given."""
        where, params = _scope(account_id)
        if model:
            where, params = where + "model = ? AND ", (*params, model)
        if api:
            where, params = where + "api = ? AND ", (*params, api)
        rows = await self.store.fetch(f"{_SELECT} WHERE {where}1 = 1 ORDER BY created_at DESC, id DESC"
                                      " LIMIT ? OFFSET ?", (*params, limit, offset))
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
