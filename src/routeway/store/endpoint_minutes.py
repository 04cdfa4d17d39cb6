"""Endpoint health per minute in the store: written by the health log every ``health_flush_seconds``
(a minute's row is replaced as its counts grow), loaded at start-up, drawn by the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from routeway.store.base import Op, Store


class MinuteRow(NamedTuple):
    endpoint: str  # provider × upstream model (routing's endpoint key)
    minute: int  # minutes since the epoch
    ok: int
    errors: int
    rate_limited: int
    ttft_p50_ms: float | None = None
    tps_p50: float | None = None


_UPSERT = (
    f"INSERT INTO endpoint_minutes ({', '.join(MinuteRow._fields)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (endpoint, minute) DO UPDATE SET ok = excluded.ok, errors = excluded.errors,"
    " rate_limited = excluded.rate_limited, ttft_p50_ms = excluded.ttft_p50_ms, tps_p50 = excluded.tps_p50"
)
_SELECT = f"SELECT {', '.join(MinuteRow._fields)} FROM endpoint_minutes"


class EndpointMinuteRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def upsert(row: MinuteRow) -> Op:
        return (_UPSERT, tuple(row))

    def since_now(self, minute: int) -> list[MinuteRow]:
        """Every row after ``minute``, by endpoint then minute (start-up)."""
        return [MinuteRow(*row) for row in
                self.store.fetch_now(f"{_SELECT} WHERE minute > ? ORDER BY endpoint, minute", (minute,))]

    async def of_endpoints(self, endpoints: Sequence[str], since_minute: int) -> list[MinuteRow]:
        """The rows of ``endpoints`` from ``since_minute`` on, oldest first."""
        if not endpoints:
            return []
        marks = ", ".join("?" * len(endpoints))
        rows = await self.store.fetch(f"{_SELECT} WHERE minute >= ? AND endpoint IN ({marks}) ORDER BY minute",
                                      (since_minute, *endpoints))
        return [MinuteRow(*row) for row in rows]
