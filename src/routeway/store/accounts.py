"""Accounts and keys in the store: the rows the book is rebuilt from at start-up, and the writes that
change them. Reads return plain rows; writes return ops for ``store.write`` (the one write path), so a
caller can commit several changes together (an account with its first credits)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from routeway.store.base import Op, Store


class AccountRow(NamedTuple):
    id: str
    name: str
    created_at: int  # ms


class KeyRow(NamedTuple):
    hash: str  # SHA-256 of the secret, hex
    account_id: str
    name: str
    label: str
    is_management: bool
    limit: int | None  # nano-USD
    limit_reset: str | None
    include_byok_in_limit: bool
    expires_at: int | None
    disabled: bool
    deleted: bool
    created_at: int
    updated_at: int | None


# KeyRow field -> column; ``limit`` is a reserved word in SQL
_KEY_COLUMNS = {field: "limit_nano" if field == "limit" else field for field in KeyRow._fields}
_BOOLEANS = {"is_management", "include_byok_in_limit", "disabled", "deleted"}
CHANGEABLE = frozenset({"name", "disabled", "limit", "limit_reset", "include_byok_in_limit", "deleted", "updated_at"})


class AccountRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all_now(self) -> list[AccountRow]:
        return [AccountRow(*row) for row in self.store.fetch_now("SELECT id, name, created_at FROM accounts")]

    def keys_now(self) -> list[KeyRow]:
        rows = self.store.fetch_now(f"SELECT {', '.join(_KEY_COLUMNS.values())} FROM api_keys")
        return [_key_row(row) for row in rows]

    def account_now(self, account_id: str) -> AccountRow | None:
        rows = self.store.fetch_now("SELECT id, name, created_at FROM accounts WHERE id = ?", (account_id,))
        return AccountRow(*rows[0]) if rows else None

    def key_now(self, key_hash: str) -> KeyRow | None:
        rows = self.store.fetch_now(f"SELECT {', '.join(_KEY_COLUMNS.values())} FROM api_keys WHERE hash = ?",
                                    (key_hash,))
        return _key_row(rows[0]) if rows else None

    async def account(self, account_id: str) -> AccountRow | None:
        rows = await self.store.fetch("SELECT id, name, created_at FROM accounts WHERE id = ?", (account_id,))
        return AccountRow(*rows[0]) if rows else None

    async def key(self, key_hash: str) -> KeyRow | None:
        rows = await self.store.fetch(f"SELECT {', '.join(_KEY_COLUMNS.values())} FROM api_keys WHERE hash = ?",
                                      (key_hash,))
        return _key_row(rows[0]) if rows else None

    @staticmethod
    def insert(account: AccountRow) -> Op:
        return ("INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)", tuple(account))

    @staticmethod
    def insert_key(key: KeyRow) -> Op:
        columns = ", ".join(_KEY_COLUMNS.values())
        return (f"INSERT INTO api_keys ({columns}) VALUES ({', '.join('?' * len(_KEY_COLUMNS))})",
                tuple(int(v) if isinstance(v, bool) else v for v in key))

    @staticmethod
    def update_key(key_hash: str, changes: Mapping[str, Any]) -> Op:
        """``changes`` are KeyRow fields; only those in CHANGEABLE (column names never come from a caller)."""
        unknown = set(changes) - CHANGEABLE
        if unknown or not changes:
            raise ValueError(f"cannot change {sorted(unknown) or 'nothing'} of a key")
        assignments = ", ".join(f"{_KEY_COLUMNS[name]} = ?" for name in changes)
        values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
        return (f"UPDATE api_keys SET {assignments} WHERE hash = ?", (*values, key_hash))


def _key_row(row: tuple[Any, ...]) -> KeyRow:
    values = dict(zip(KeyRow._fields, row, strict=True))
    for name in _BOOLEANS:
        values[name] = bool(values[name])
    return KeyRow(**values)
