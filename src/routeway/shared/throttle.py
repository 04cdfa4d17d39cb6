"""Rate limits and concurrent-stream caps counted in Redis, so every replica draws on one budget.

The counters are the same sliding-window counters as in-process (``api/throttle.py``, the ``limits``
library's algorithm: the current window's count plus the previous window's, weighted by how much of it
still overlaps the sliding window), kept in Redis and checked by one Lua script per check: one round
trip, atomic across replicas, all or nothing over several windows ("10/second;600/minute"), with Redis's
own clock so replicas on different hosts agree on window edges. The ``limits`` library's Redis storage
was the other candidate: it needs a test and a hit per window (2 round trips for one window, 4 for two)
and cannot take several windows atomically.

Streams open at once per key: each replica writes its own count into one hash per key; the check sums
the counts of replicas seen in the last ``STALE_SECONDS`` (each replica refreshes its mark every
``HEARTBEAT_SECONDS``), so a crashed replica's streams stop counting within seconds.

While Redis is away (``shared/link.py``) every check falls back to this process's own counters: limits
then hold per process, as without Redis."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from typing import Any

from limits import RateLimitItem
from redis.commands.core import AsyncScript

from routeway.api.throttle import Throttle
from routeway.config import LimitSettings
from routeway.errors import APIError
from routeway.ledger.book import AccountState, KeyState
from routeway.shared.link import Link, Unavailable

HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 10  # a replica not seen for this long has its open streams forgotten

# KEYS[i]: counter of window item i. ARGV: then for each item amount, seconds, mode ("take" counts the
# request, "test" refuses without counting, "peek" only reports). Returns {refused item or 0, its wait in
# ms, used count of each item}.
WINDOWS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local refused, wait, used, current = 0, 0, {}, {}
for i = 1, #KEYS do
  local amount, expiry, mode = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), ARGV[3*i]
  local window = math.floor(now / expiry)
  current[i] = KEYS[i] .. ':' .. window
  local cur = tonumber(redis.call('GET', current[i]) or '0')
  local prev = tonumber(redis.call('GET', KEYS[i] .. ':' .. (window - 1)) or '0')
  local left = (window + 1) * expiry - now
  used[i] = math.floor(prev * left / expiry) + cur
  if mode ~= 'peek' and refused == 0 and used[i] + 1 > amount then
    refused, wait = i, math.ceil(left * 1000)
  end
end
if refused == 0 then
  for i = 1, #KEYS do
    if ARGV[3*i] == 'take' then
      redis.call('INCR', current[i])
      redis.call('EXPIRE', current[i], 2 * tonumber(ARGV[3*i-1]) + 1)
      used[i] = used[i] + 1
    end
  end
end
local answer = {refused, wait}
for i = 1, #KEYS do answer[#answer + 1] = used[i] end
return answer
"""

# KEYS[1]: the key's hash of open streams per replica, KEYS[2]: replicas by last heartbeat. ARGV: this
# replica, the limit, how long a silent replica still counts. Counts one more stream of this replica and
# returns -1, or returns the streams open when that would pass the limit.
OPEN_STREAM = """
local now = tonumber(redis.call('TIME')[1])
local open = 1
local fields = redis.call('HGETALL', KEYS[1])
for j = 1, #fields, 2 do
  local seen = fields[j] == ARGV[1]
    or tonumber(redis.call('ZSCORE', KEYS[2], fields[j]) or '0') >= now - tonumber(ARGV[3])
  if seen then open = open + tonumber(fields[j + 1]) else redis.call('HDEL', KEYS[1], fields[j]) end
end
if open > tonumber(ARGV[2]) then return open - 1 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], 86400)
return -1
"""

# KEYS[1]: the key's hash of open streams per replica. ARGV: this replica. One stream fewer (never below 0).
CLOSE_STREAM = """
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
return 0
"""


class SharedThrottle(Throttle):
    """``Throttle`` with its counters in Redis; its own in-process counters are the fallback."""

    def __init__(self, settings: LimitSettings, link: Link) -> None:
        super().__init__(settings)
        self.link = link
        self.replica = uuid.uuid4().hex[:16]
        self.windows: AsyncScript = link.client.register_script(WINDOWS)
        self.open_script: AsyncScript = link.client.register_script(OPEN_STREAM)
        self.close_script: AsyncScript = link.client.register_script(CLOSE_STREAM)
        self.shared_streams: dict[str, int] = {}  # key hash -> this replica's streams counted in Redis
        self.unsynced: set[str] = set()  # keys whose count in Redis may be wrong (a give-back was lost)
        self.writes: set[asyncio.Task[None]] = set()

    # ---- request-rate windows ---------------------------------------------------------------------
    async def _shared(self, checks: list[tuple[RateLimitItem, str, str, str]]) -> list[int] | None:
        """Run ``checks`` (item, namespace, identity, mode) in Redis. None: Redis is away."""
        keys = [self.link.key("rl", namespace, identity, item.key_for()) for item, namespace, identity, _ in checks]
        args: list[Any] = []
        for item, _, _, mode in checks:
            args += [item.amount, item.get_expiry(), mode]
        try:
            answer = await self.link.scripts.run(self.windows, keys, args)
        except Unavailable:
            return None
        return [int(value) for value in answer]

    async def _take_shared(self, items: list[RateLimitItem], namespace: str, identity: str, scope: str,
                           tests: list[tuple[RateLimitItem, str, str, str]] | None = None) -> bool:
        """True when Redis counted (or refused) the request; False: fall back to this process."""
        checks = (tests or []) + [(item, namespace, identity, "take") for item in items]
        answer = await self._shared(checks)
        if answer is None:
            return False
        refused, wait_ms = answer[0], answer[1]
        if refused:
            item, namespace, _, _ = checks[refused - 1]
            what = "failed sign-ins from this address" if namespace == "signin-failures" else scope
            raise _refusal(item, what, wait_ms)
        return True

    async def check_key(self, key: KeyState) -> None:
        if self.per_key and not await self._take_shared(self.per_key, "key", key.hash, "this API key"):
            await super().check_key(key)

    async def check_free(self, account: AccountState) -> None:
        daily = self._daily(account)
        if daily is None or not await self._take_shared([*self.free, daily], "free", account.id,
                                                        "free model variants (:free) on this account"):
            await super().check_free(account)

    async def check_signin(self, address: str, key_id: str) -> None:
        tests = [(item, "signin-failures", address, "test") for item in self.signin_failures]
        if not await self._take_shared(self.signin_key, "signin-key", key_id, "sign-ins with this key", tests):
            await super().check_signin(address, key_id)

    async def signin_failed(self, address: str) -> None:
        if await self._shared([(item, "signin-failures", address, "take") for item in self.signin_failures]
                              ) is None:
            await super().signin_failed(address)

    async def describe(self, account: AccountState) -> dict[str, Any]:
        daily = self._daily(account)
        if daily is not None:
            answer = await self._shared([(daily, "free", account.id, "peek")])
            if answer is not None:
                return self.describe_with(account, max(0, daily.amount - answer[2]))
        return await super().describe(account)

    # ---- concurrent streams ---------------------------------------------------------------------
    async def open_stream(self, key: KeyState) -> None:
        """Counted in Redis (this replica's field of the key's hash) when it answers, else in this process;
        ``shared_streams`` remembers which, so each stream is given back where it was counted."""
        if not self.max_streams:
            return
        try:
            answer = int(await self.link.scripts.run(
                self.open_script, [self.link.key("streams", key.hash), self.link.key("replicas")],
                [self.replica, self.max_streams, STALE_SECONDS]))
        except Unavailable:
            # per process: this process's streams counted in Redis before it went away count too
            if self.open_streams.get(key.hash, 0) + self.shared_streams.get(key.hash, 0) >= self.max_streams:
                raise self.too_many_streams(self.max_streams) from None
            await super().open_stream(key)
            return
        if answer >= 0:
            raise self.too_many_streams(answer)
        self.shared_streams[key.hash] = self.shared_streams.get(key.hash, 0) + 1

    async def close_stream(self, key: KeyState) -> None:
        """Given back here at once; Redis learns it in the background (a ``finally`` must not wait on the
        network)."""
        if not self.max_streams:
            return
        counted = self.shared_streams.get(key.hash, 0)
        if counted <= 0:
            self.forget_stream(key)  # counted in this process while Redis was away
            return
        if counted == 1:
            del self.shared_streams[key.hash]
        else:
            self.shared_streams[key.hash] = counted - 1
        task = asyncio.create_task(self._give_back(key.hash))
        self.writes.add(task)
        task.add_done_callback(self.writes.discard)

    async def _give_back(self, key_hash: str) -> None:
        try:
            await self.link.scripts.run(self.close_script, [self.link.key("streams", key_hash)], [self.replica])
        except Unavailable:
            self.unsynced.add(key_hash)

    async def _sync_streams(self) -> None:
        """After Redis was away: write this replica's true counts of the keys whose give-back was lost."""
        if not self.unsynced or self.link.degraded:
            return
        todo, self.unsynced = self.unsynced, set()
        pipe = self.link.client.pipeline(transaction=False)
        for key_hash in todo:
            count = self.shared_streams.get(key_hash, 0)
            if count:
                pipe.hset(self.link.key("streams", key_hash), self.replica, count)
            else:
                pipe.hdel(self.link.key("streams", key_hash), self.replica)
        try:
            await self.link.call(pipe.execute())
        except Unavailable:
            self.unsynced |= todo

    async def sweep_forever(self) -> None:
        await asyncio.gather(super().sweep_forever(), self._heartbeat_forever())

    async def _heartbeat_forever(self) -> None:
        """Mark this replica alive (its stream counts count) and repair counts written while Redis was away."""
        while True:
            if not self.link.degraded:
                with contextlib.suppress(Unavailable):
                    await self.link.call(self._heartbeat())
                await self._sync_streams()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _heartbeat(self) -> None:
        now = int((await self.link.client.time())[0])
        replicas = self.link.key("replicas")
        pipe = self.link.client.pipeline(transaction=False)
        pipe.zadd(replicas, {self.replica: now})
        pipe.zremrangebyscore(replicas, "-inf", now - 10 * STALE_SECONDS)
        pipe.expire(replicas, 86400)
        await pipe.execute()


def _refusal(item: RateLimitItem, scope: str, wait_ms: int) -> APIError:
    wait = max(1, math.ceil(wait_ms / 1000))
    reset_ms = int(time.time() * 1000) + wait_ms
    return APIError(429, f"Rate limit exceeded for {scope}: {item}. Retry in {wait} s.",
                    metadata={"limit": str(item)},
                    headers={"retry-after": str(wait), "x-ratelimit-limit": str(item.amount),
                             "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset_ms)})
