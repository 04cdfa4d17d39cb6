"""Health counters to and from the store: per-minute rows, flushed in the background, loaded at start."""

from __future__ import annotations

import asyncio
import logging
import statistics

from routeway.interfaces import HealthRegistry
from routeway.routing.health import MINUTES_KEPT
from routeway.store.base import Op, Store, StoreUnwritable
from routeway.store.endpoint_minutes import EndpointMinuteRepository, MinuteRow

log = logging.getLogger("routeway.health")


class HealthLog:
    def __init__(self, store: Store, health: HealthRegistry) -> None:
        self.store = store
        self.minutes = EndpointMinuteRepository(store)
        self.health = health

    def load(self, now: float) -> None:
        for row in self.minutes.since_now(int(now // 60) - MINUTES_KEPT):
            self.health.restore(row.endpoint, row.minute, row.ok, row.errors, row.rate_limited)

    def pending(self) -> list[Op]:
        ops: list[Op] = []
        for endpoint in self.health.endpoints.values():
            if not endpoint.dirty:
                continue
            for minute, ok, errors, limited in endpoint.minutes:
                if minute not in endpoint.dirty:
                    continue
                in_minute = [s for s in endpoint.samples if int(s[0] // 60) == minute]
                ttft = statistics.median(s[1] for s in in_minute) if in_minute else None
                rates = [s[2] for s in in_minute if s[2] is not None]
                ops.append(self.minutes.upsert(MinuteRow(endpoint.key, minute, ok, errors, limited, ttft,
                                                         statistics.median(rates) if rates else None)))
            endpoint.dirty.clear()
        return ops

    async def flush(self, now: float) -> None:
        ops = self.pending()
        if ops:
            await self.store.write(ops)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush(0)
            except StoreUnwritable:  # the store logs that once; these minutes are lost, later ones are kept
                pass
            except Exception:  # a failed flush must not stop later ones; the rows stay dirty-free but logged
                log.exception("persisting endpoint health failed")
