"""The response cache's rows (cache/): one encoded answer per cache key with its expiry, and the accounts
that turned the cache on for every request. Expired rows are never read and are swept as new ones arrive."""

from __future__ import annotations

from routeway.store.base import Op, Store

_DELETE = "DELETE FROM response_cache WHERE cache_key = ?"
_INSERT = "INSERT INTO response_cache (cache_key, account_id, entry, expires_at) VALUES (?, ?, ?, ?)"
_SWEEP = "DELETE FROM response_cache WHERE expires_at <= ?"
_GET = "SELECT entry FROM response_cache WHERE cache_key = ? AND expires_at > ?"
_ACCOUNT_DELETE = "DELETE FROM response_cache_accounts WHERE account_id = ?"
_ACCOUNT_INSERT = "INSERT INTO response_cache_accounts (account_id, ttl_seconds) VALUES (?, ?)"
_ACCOUNTS = "SELECT account_id, ttl_seconds FROM response_cache_accounts"


class ResponseCacheRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def put(cache_key: str, account_id: str, entry: str, expires_at: int, now: int) -> list[Op]:
        """Replace the key's entry (delete then insert: the same SQL on SQLite and PostgreSQL) and sweep
        what has expired, in one write."""
        return [(_SWEEP, (now,)), (_DELETE, (cache_key,)), (_INSERT, (cache_key, account_id, entry, expires_at))]

    @staticmethod
    def delete(cache_key: str) -> list[Op]:
        return [(_DELETE, (cache_key,))]

    async def get(self, cache_key: str, now: int) -> str | None:
        rows = await self.store.fetch(_GET, (cache_key, now))
        return str(rows[0][0]) if rows else None

    @staticmethod
    def set_account(account_id: str, ttl_seconds: int | None) -> list[Op]:
        """``ttl_seconds`` None turns the account's default off."""
        ops: list[Op] = [(_ACCOUNT_DELETE, (account_id,))]
        if ttl_seconds is not None:
            ops.append((_ACCOUNT_INSERT, (account_id, ttl_seconds)))
        return ops

    def accounts_now(self) -> dict[str, int]:
        """Every account's default TTL (start-up)."""
        return {str(a): int(t) for a, t in self.store.fetch_now(_ACCOUNTS)}
