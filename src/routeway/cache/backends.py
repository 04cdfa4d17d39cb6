"""Where cached answers live: the store (SQLite on one machine) or Redis, shared by every replica.
Both expire entries by their TTL; neither is ever the reason a request fails (cache/service.py)."""

from __future__ import annotations

from typing import Any, Protocol

from routeway.store.base import Store
from routeway.store.response_cache import ResponseCacheRepository


class CacheBackend(Protocol):
    async def get(self, key: str, now_ms: int) -> str | bytes | None: ...

    async def put(self, key: str, account_id: str, entry: str, ttl_seconds: int, now_ms: int) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


class StoreBackend:
    """Rows in the store, written through its group commit beside the generations."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rows = ResponseCacheRepository(store)

    async def get(self, key: str, now_ms: int) -> str | None:
        return await self.rows.get(key, now_ms)

    async def put(self, key: str, account_id: str, entry: str, ttl_seconds: int, now_ms: int) -> None:
        await self.store.write(self.rows.put(key, account_id, entry, now_ms + ttl_seconds * 1000, now_ms))

    async def delete(self, key: str) -> None:
        await self.store.write(self.rows.delete(key))

    async def close(self) -> None:
        return None


class RedisBackend:
    """``SET key entry PX ttl`` under a prefix of the operator's: Redis expires the entries itself, and
    evicts them under memory pressure if it is configured to (as OpenRouter's cache may)."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio  # only when configured

        self.client: Any = redis.asyncio.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.prefix = prefix

    async def get(self, key: str, now_ms: int) -> bytes | None:
        value = await self.client.get(self.prefix + key)
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, account_id: str, entry: str, ttl_seconds: int, now_ms: int) -> None:
        await self.client.set(self.prefix + key, entry, px=ttl_seconds * 1000)

    async def delete(self, key: str) -> None:
        await self.client.delete(self.prefix + key)

    async def close(self) -> None:
        await self.client.aclose()
