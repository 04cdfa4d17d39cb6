"""Requests in flight per engine (an endpoint's ``max_concurrency``) and per API key
(``[limits] key_max_concurrency``), counted in this process: ``interfaces.ConcurrencyLimits``'s in-process
implementation. A full slot makes routing fall back to the next endpoint; with none left the request
waits in a bounded queue (arrival order) for the first one, then gets a 429 with Retry-After.

A slot given back goes straight to the oldest waiter, so a newcomer cannot take it first. With ``[shared]
redis`` set the counts live in Redis instead (shared/slots.py), so the caps hold across processes and
replicas. Without it each worker of ``serve --workers N`` counts its own share of every cap: the cap divided
by N, at least 1 (so the engine sees at most the cap, or N when the cap is below N)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping


class Slots:
    def __init__(self, workers: int = 1) -> None:
        self.workers = workers  # processes sharing each cap without Redis: each takes its share
        self._held: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    @property
    def in_flight(self) -> Mapping[str, int]:
        return self._held

    async def try_acquire(self, name: str, cap: int) -> bool:
        return self.take_now(name, cap)

    def share(self, cap: int) -> int:
        return max(1, cap // self.workers)

    def take_now(self, name: str, cap: int) -> bool:
        cap = self.share(cap)
        held = self._held.get(name, 0)
        if held >= cap or self._waiting.get(name):  # waiters go first
            return False
        self._held[name] = held + 1
        return True

    async def acquire(self, name: str, cap: int, queue: int, timeout: float) -> bool:
        """A slot, waiting at most ``timeout`` behind at most ``queue`` others; False when there is none."""
        if self.take_now(name, cap):
            return True
        waiters = self._waiting.setdefault(name, deque())
        if len(waiters) >= queue or timeout <= 0:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except TimeoutError:
            if future.done():  # the slot arrived as the time ran out: it is ours, give it on
                self.release(name)
            return False
        except BaseException:
            if future.done() and not future.cancelled():
                self.release(name)
            raise
        finally:
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiting.pop(name, None)
            if not future.done():
                future.cancel()

    def release(self, name: str) -> None:
        waiters = self._waiting.get(name)
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes to the waiter: the count stays
                return
        held = self._held.get(name, 0) - 1
        if held > 0:
            self._held[name] = held
        else:
            self._held.pop(name, None)
