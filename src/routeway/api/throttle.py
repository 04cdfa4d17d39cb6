"""Request-rate limits: per API key (the operator's choice, off by default), and OpenRouter's limits on
``:free`` variants per account (20 a minute; 50 a day, or 1,000 once the account was granted $10).
Dashboard sign-in attempts are limited per key tried (``signin_per_key``) and, counting failures
only, per client address (``signin_failures_per_address``). Also the streams open at once per API key
(``key_concurrent_streams``, off by default): a plain count per key, taken before the reservation and
given back when the stream ends, however it ends.

Counting uses the ``limits`` library's sliding-window counters in this process's memory: O(1) per check,
no store round trip. A refused request is answered 429 before its body is read, so it costs neither a
reservation nor a ledger entry.

The library's ``MemoryStorage`` drops expired counters from a ``threading.Timer`` that it starts again
10 ms after the last one whenever counters change: under load, a new OS thread up to a hundred times a
second, competing with the event loop for the GIL (bench/NOTES.md step 13). ``LoopStorage`` is the same
storage with expiry done by a sweep on the event loop instead."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from limits import RateLimitItem, parse, parse_many
from limits.storage import MemoryStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter

from routeway.config import LimitSettings
from routeway.errors import APIError
from routeway.ledger.book import AccountState, KeyState
from routeway.ledger.money import NANO

FREE_DAILY_CREDITS_USD = 10  # OpenRouter: the higher daily :free limit from $10 of credits on
SWEEP_SECONDS = 60.0  # how often expired counters are dropped


class LoopStorage(MemoryStorage):
    """``MemoryStorage`` without its expiry thread (single-threaded use on the event loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.timer.cancel()  # the base class starts one at once
        self.timer.join()

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the base class's private timer start
        pass

    def sweep(self) -> None:
        """Drop expired counters (what the base class's timer thread would have done)."""
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.storage)


class Throttle:
    def __init__(self, settings: LimitSettings, storage: Storage | None = None) -> None:
        # any ``limits`` storage counts: this process's memory by default; the library's Redis storage would
        # share the counts between routeway processes (issue 12) with no other change here
        self.storage = storage if storage is not None else LoopStorage()
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.per_key = parse_many(settings.key_requests) if settings.key_requests else []
        self.free = parse_many(settings.free_requests) if settings.free_requests else []
        self.free_daily = parse(f"{settings.free_daily}/day") if settings.free_daily else None
        self.free_daily_with_credits = (parse(f"{settings.free_daily_with_credits}/day")
                                        if settings.free_daily_with_credits else None)
        self.max_streams = settings.key_concurrent_streams
        self.signin_key = parse_many(settings.signin_per_key) if settings.signin_per_key else []
        failures = settings.signin_failures_per_address
        self.signin_failures = parse_many(failures) if failures else []
        self.open_streams: dict[str, int] = {}  # key hash -> streams open now; keys at zero are dropped

    async def sweep_forever(self) -> None:
        storage = self.storage
        if not isinstance(storage, LoopStorage):
            return  # other storages expire their counters themselves
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            storage.sweep()

    async def check_key(self, key: KeyState) -> None:
        if self.per_key:
            self._take(self.per_key, "key", key.hash, "this API key")

    async def open_stream(self, key: KeyState) -> None:
        """Count one more stream on this key, or refuse it (429) when the key has its limit open."""
        open_now = self.open_streams.get(key.hash, 0)
        if self.max_streams and open_now >= self.max_streams:
            raise self.too_many_streams(open_now)
        self.open_streams[key.hash] = open_now + 1

    def too_many_streams(self, open_now: int) -> APIError:
        return APIError(429, f"Too many concurrent streams for this API key: {open_now} are open and the limit is"
                             f" {self.max_streams}. Retry when one of them finishes.",
                        metadata={"limit": self.max_streams},
                        headers={"retry-after": "1", "x-ratelimit-limit": str(self.max_streams),
                                 "x-ratelimit-remaining": "0"})

    async def close_stream(self, key: KeyState) -> None:
        self.forget_stream(key)

    def forget_stream(self, key: KeyState) -> None:
        left = self.open_streams.get(key.hash, 0) - 1
        if left > 0:
            self.open_streams[key.hash] = left
        else:
            self.open_streams.pop(key.hash, None)

    async def check_signin(self, address: str, key_id: str) -> None:
        """One dashboard sign-in attempt from ``address`` with the key whose digest is ``key_id``, before
        the key is looked at: refused (429) when the key has used its window or the address its window of
        failures. Only the key's window counts it; ``signin_failed`` counts a failure against the address,
        so a tenant signing in again and again uses up its own key's window, not its address's (which
        behind a reverse proxy is everyone's)."""
        for item in self.signin_failures:
            if not self.limiter.test(item, "signin-failures", address):
                self._refuse(item, "signin-failures", address, "failed sign-ins from this address")
        self._take(self.signin_key, "signin-key", key_id, "sign-ins with this key")

    async def signin_failed(self, address: str) -> None:
        for item in self.signin_failures:
            self.limiter.hit(item, "signin-failures", address)

    def _daily(self, account: AccountState) -> RateLimitItem | None:
        return self.free_daily_with_credits if self.free_tier_over(account) else self.free_daily

    @staticmethod
    def free_tier_over(account: AccountState) -> bool:
        return account.credits >= FREE_DAILY_CREDITS_USD * NANO

    async def check_free(self, account: AccountState) -> None:
        """A request for a ``:free`` variant: the account's own limits, whichever key it uses."""
        daily = self._daily(account)
        if daily is None:
            raise APIError(429, "Free model variants (:free) are switched off on this server.",
                           metadata={"limit": 0})
        self._take([*self.free, daily], "free", account.id, "free model variants (:free) on this account")

    async def describe(self, account: AccountState) -> dict[str, Any]:
        """The rate-limit fields of ``GET /key``, in OpenRouter's shape."""
        daily = self._daily(account)
        return self.describe_with(account, self.limiter.get_window_stats(daily, "free", account.id).remaining
                                  if daily is not None else 0)

    def describe_with(self, account: AccountState, remaining: int) -> dict[str, Any]:
        """``describe`` once the daily ``:free`` window's remaining requests are known."""
        if self.per_key:
            first = self.per_key[0]
            rate = {"requests": first.amount, "interval": f"{first.get_expiry()}s",
                    "note": f"per key: {'; '.join(str(i) for i in self.per_key)}"}
        else:
            rate = {"requests": -1, "interval": "10s", "note": "no per-key request limit is set"}
        daily = self._daily(account)
        if daily is None:
            free = {"limit": 0, "remaining": 0, "used": 0}
        else:
            free = {"limit": daily.amount, "remaining": remaining, "used": daily.amount - remaining}
        return {"rate_limit": rate, "free_model_daily_requests": free, "is_free_tier": not self.free_tier_over(account)}

    def _take(self, items: list[RateLimitItem], namespace: str, identity: str, scope: str) -> None:
        if len(items) > 1:  # all or nothing: a refused request must not use up the other windows
            for item in items:
                if not self.limiter.test(item, namespace, identity):
                    self._refuse(item, namespace, identity, scope)
        for item in items:
            if not self.limiter.hit(item, namespace, identity):
                self._refuse(item, namespace, identity, scope)

    def _refuse(self, item: RateLimitItem, namespace: str, identity: str, scope: str) -> None:
        reset = self.limiter.get_window_stats(item, namespace, identity).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise APIError(429, f"Rate limit exceeded for {scope}: {item}. Retry in {wait} s.",
                       metadata={"limit": str(item)},
                       headers={"retry-after": str(wait), "x-ratelimit-limit": str(item.amount),
                                "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(reset * 1000))})
