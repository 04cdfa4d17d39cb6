"""State that routeway processes share through Redis (issue 12): rate-limit counters and open streams
(``throttle.py``), endpoint health and breakers (``health.py``), dashboard sessions (``sessions.py``) and
concurrency caps (``slots.py``),
over one connection with short timeouts that falls back to per-process state while Redis is away
(``link.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from routeway.shared.link import Unavailable

if TYPE_CHECKING:
    from routeway.config import Settings
    from routeway.routing.health import HealthSettings
    from routeway.shared.health import SharedHealth
    from routeway.shared.link import Link
    from routeway.shared.sessions import RedisSessionStore
    from routeway.shared.slots import SharedSlots
    from routeway.shared.throttle import SharedThrottle


@dataclass
class SharedState:
    link: Link
    health: SharedHealth
    throttle: SharedThrottle
    sessions: RedisSessionStore
    slots: SharedSlots

    async def start(self) -> list[asyncio.Task[None]]:
        """Check Redis once (a warning now if it is away: routeway serves anyway) and start sharing."""
        await self.link.check()
        with contextlib.suppress(Unavailable):
            await self.health.begin()
        return [asyncio.create_task(self.link.watch_forever()), asyncio.create_task(self.health.sync_forever()),
                asyncio.create_task(self.slots.sync_forever())]

    async def close(self) -> None:
        await self.link.close()


def build_shared(settings: Settings, health_settings: HealthSettings) -> SharedState:
    from routeway.shared.health import SharedHealth
    from routeway.shared.link import Link
    from routeway.shared.sessions import RedisSessionStore
    from routeway.shared.slots import SharedSlots
    from routeway.shared.throttle import SharedThrottle

    link = Link(settings.shared)
    throttle = SharedThrottle(settings.limits, link)
    return SharedState(link, SharedHealth(health_settings, link), throttle, RedisSessionStore(link),
                       SharedSlots(link, throttle.replica, settings.worker.processes if settings.worker else 1))
