"""The response cache as routes use it: decide per request (cache/policy.py), look an answer up, keep a
new one. A backend that fails (Redis down, the store unable to write) makes a miss or an answer not
kept, logged, never a failed request."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from routeway.cache import policy
from routeway.cache.backends import CacheBackend
from routeway.cache.entry import CachedAnswer, decode, encode
from routeway.cache.policy import CachePolicy
from routeway.errors import store_unavailable
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import KeyState
from routeway.store.base import Op, Store, StoreUnwritable
from routeway.store.changes import ChangeRepository
from routeway.store.response_cache import ResponseCacheRepository

log = logging.getLogger("routeway.cache")


class ResponseCache:
    def __init__(self, store: Store, backend: CacheBackend, max_entry_bytes: int, logged: bool = False) -> None:
        self.store = store
        # Other processes share the store: a change goes to the change log, and they apply it (``follow``).
        self.logged = logged
        self.backend = backend
        self.max_entry_bytes = max_entry_bytes
        self.account_ttls: dict[str, int] = {}  # accounts that cache every request by default
        self.hits = 0
        self.misses = 0

    def load(self) -> None:
        self.account_ttls = ResponseCacheRepository(self.store).accounts_now()

    async def set_account(self, account_id: str, ttl_seconds: int | None) -> None:
        """Written, then applied (a 503 when the store cannot write: nothing changed)."""
        try:
            ops: list[Op] = ResponseCacheRepository.set_account(account_id, ttl_seconds)
            if self.logged:
                ops.append(ChangeRepository.append("response_cache", account_id, now_ms()))
            await self.store.write(ops)
        except StoreUnwritable as unwritable:
            raise store_unavailable(unwritable.problem) from None
        self._apply(account_id, ttl_seconds)

    async def follow(self, account_id: str) -> None:
        """An account's default changed, maybe through another process: read it back (ledger/follow.py)."""
        self._apply(account_id, await ResponseCacheRepository(self.store).account_ttl(account_id))

    def _apply(self, account_id: str, ttl_seconds: int | None) -> None:
        if ttl_seconds is None:
            self.account_ttls.pop(account_id, None)
        else:
            self.account_ttls[account_id] = ttl_seconds

    def policy(self, headers: Mapping[str, str], key: KeyState, api: str, stream: bool,
               body: bytes) -> CachePolicy | None:
        account_ttl = self.account_ttls.get(key.account_id)
        if account_ttl is None and "x-openrouter-cache" not in headers:
            return None  # the usual request, with the cache off: no header to read (bench step 37)
        ttl = policy.wanted(headers, account_ttl)
        if ttl is None:
            return None
        return CachePolicy(policy.cache_key(key.hash, api, stream, body), ttl, policy.clears(headers))

    async def lookup(self, chosen: CachePolicy) -> CachedAnswer | None:
        try:
            if chosen.clear:
                await self.backend.delete(chosen.key)
                return None
            now = now_ms()
            found = await self.backend.get(chosen.key, now)
        except Exception as exc:
            log.warning("response cache lookup failed, answering afresh: %s", exc)
            return None
        entry = decode(found) if found is not None else None
        if entry is not None and entry.left_seconds(now) <= 0:
            entry = None
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    async def keep(self, chosen: CachePolicy, account_id: str, entry: CachedAnswer) -> None:
        text = encode(entry)
        if len(text) > self.max_entry_bytes:
            return
        try:
            await self.backend.put(chosen.key, account_id, text, entry.ttl_seconds, entry.created_at)
        except Exception as exc:
            log.warning("response cache could not keep generation %s: %s", entry.source_id, exc)

    async def close(self) -> None:
        await self.backend.close()
