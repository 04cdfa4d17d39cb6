"""Concurrency caps (an endpoint's ``max_concurrency``, ``[limits] key_max_concurrency``) counted in Redis,
so a cap holds across every process and replica: ``interfaces.ConcurrencyLimits`` shared, where
routing/concurrency.py is the in-process one.

Each replica writes its own count into one hash per capped name (``slots:<name>``); taking a slot is one
Lua script that sums the counts of the replicas seen in the last ``STALE_SECONDS`` (the heartbeat of
shared/throttle.py marks them) and counts one more only under the cap, atomically across replicas. A
crashed replica's slots stop counting once its mark is stale, and the next script drops them. A slot is
given back at once here and in Redis in the background (a ``finally`` must not wait on the network).

Waiting: a request over the cap waits in this process's queue (arrival order, bounded by
``concurrency_queue``); the oldest waiter asks Redis again whenever this process gives a slot back and every
``POLL_SECONDS`` (a slot freed by another replica), until its time runs out. Across replicas the order of
waiters is not kept, only the cap.

While Redis is away every cap is counted in this process (what it still holds in Redis counting too), as
without Redis (routing/concurrency.py: a worker of ``serve --workers N`` takes its share of each cap)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping

from redis.commands.core import AsyncScript

from routeway.routing.concurrency import Slots
from routeway.shared.link import Link, Unavailable
from routeway.shared.throttle import STALE_SECONDS

POLL_SECONDS = 0.05
SYNC_SECONDS = 2.0

# KEYS[1]: the name's hash of slots per replica, KEYS[2]: replicas by last heartbeat. ARGV: this replica, the
# cap, how long a silent replica still counts. 1 and one more slot of this replica, or 0 at the cap.
TAKE = """
local now = tonumber(redis.call('TIME')[1])
local held = 0
local fields = redis.call('HGETALL', KEYS[1])
for j = 1, #fields, 2 do
  local live = fields[j] == ARGV[1]
    or tonumber(redis.call('ZSCORE', KEYS[2], fields[j]) or '0') >= now - tonumber(ARGV[3])
  if live then held = held + tonumber(fields[j + 1]) else redis.call('HDEL', KEYS[1], fields[j]) end
end
if held >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], 86400)
return 1
"""

# KEYS[1]: the name's hash of slots per replica. ARGV: this replica. One slot fewer (never below 0).
GIVE = """
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
return 0
"""


class SharedSlots:
    def __init__(self, link: Link, replica: str, workers: int = 1) -> None:
        self.link = link
        self.replica = replica  # shared/throttle.py's: its heartbeat keeps this replica's slots counting
        self.take_script: AsyncScript = link.client.register_script(TAKE)
        self.give_script: AsyncScript = link.client.register_script(GIVE)
        self.local = Slots(workers)  # while Redis is away: as without Redis
        self.counted: dict[str, int] = {}  # name -> this replica's slots counted in Redis
        self.waiting: dict[str, deque[object]] = {}
        self.freed: dict[str, asyncio.Event] = {}
        self.unsynced: set[str] = set()  # names whose count in Redis may be wrong (a give-back was lost)
        self.writes: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> Mapping[str, int]:
        """This process's slots (counted in Redis or, while it was away, here)."""
        held = dict(self.local.in_flight)
        for name, count in self.counted.items():
            held[name] = held.get(name, 0) + count
        return held

    async def try_acquire(self, name: str, cap: int) -> bool:
        if self.waiting.get(name):  # waiters go first
            return False
        return await self._take(name, cap)

    async def _take(self, name: str, cap: int) -> bool:
        task = asyncio.ensure_future(self._take_now(name, cap))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Redis may count the slot after all: give it back when it does
            task.add_done_callback(lambda done: self.release(name) if not done.cancelled() and done.result() else None)
            raise

    async def _take_now(self, name: str, cap: int) -> bool:
        try:
            taken = int(await self.link.scripts.run(
                self.take_script, [self.link.key("slots", name), self.link.key("replicas")],
                [self.replica, cap, STALE_SECONDS]))
        except Unavailable:
            held_in_redis = self.counted.get(name, 0)
            return held_in_redis < cap and self.local.take_now(name, cap - held_in_redis)
        if taken:
            self.counted[name] = self.counted.get(name, 0) + 1
        return bool(taken)

    async def acquire(self, name: str, cap: int, queue: int, timeout: float) -> bool:
        if await self.try_acquire(name, cap):
            return True
        waiters = self.waiting.setdefault(name, deque())
        if len(waiters) >= queue or timeout <= 0:
            return False
        me = object()
        waiters.append(me)
        freed = self.freed.setdefault(name, asyncio.Event())
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if waiters[0] is me and await self._take(name, cap):
                        return True
                    freed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(freed.wait(), POLL_SECONDS)
        except TimeoutError:
            return False
        finally:
            waiters.remove(me)
            if not waiters:
                self.waiting.pop(name, None)
                self.freed.pop(name, None)
            elif (event := self.freed.get(name)) is not None:
                event.set()  # the next waiter is at the head now

    def release(self, name: str) -> None:
        counted = self.counted.get(name, 0)
        if counted <= 0:
            self.local.release(name)  # counted here while Redis was away
        else:
            if counted == 1:
                del self.counted[name]
            else:
                self.counted[name] = counted - 1
            task = asyncio.ensure_future(self._give_back(name))
            self.writes.add(task)
            task.add_done_callback(self.writes.discard)
        if (event := self.freed.get(name)) is not None:
            event.set()

    async def _give_back(self, name: str) -> None:
        try:
            await self.link.scripts.run(self.give_script, [self.link.key("slots", name)], [self.replica])
        except Unavailable:
            self.unsynced.add(name)

    async def sync_forever(self) -> None:
        """After Redis was away: write this replica's true counts of the names whose give-back was lost."""
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            if not self.unsynced or self.link.degraded:
                continue
            todo, self.unsynced = self.unsynced, set()
            pipe = self.link.client.pipeline(transaction=False)
            for name in todo:
                count = self.counted.get(name, 0)
                if count:
                    pipe.hset(self.link.key("slots", name), self.replica, count)
                else:
                    pipe.hdel(self.link.key("slots", name), self.replica)
            try:
                await self.link.call(pipe.execute())
            except Unavailable:
                self.unsynced |= todo
