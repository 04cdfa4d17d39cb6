"""Observability destinations in the store: one row per export target of an account (observe/broadcast.py
sends to them; api/destinations.py manages them). Reads are always scoped to one account, except the
start-up load of every enabled destination."""

from __future__ import annotations

from typing import Any

from routeway.store.base import Op, Store

COLUMNS = ("id", "account_id", "name", "type", "config", "sampling_rate", "privacy_mode", "api_key_hashes", "enabled",
           "created_at", "updated_at")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM observability_destinations"
_INSERT = (f"INSERT INTO observability_destinations ({', '.join(COLUMNS)})"
           f" VALUES ({', '.join('?' * len(COLUMNS))})")
_CHANGEABLE = ("name", "config", "sampling_rate", "privacy_mode", "api_key_hashes", "enabled", "updated_at")


def _row(values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(COLUMNS, values, strict=True))


class DestinationRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def insert(row: dict[str, Any]) -> Op:
        return (_INSERT, tuple(row[c] for c in COLUMNS))

    @staticmethod
    def update(row: dict[str, Any]) -> Op:
        sets = ", ".join(f"{c} = ?" for c in _CHANGEABLE)
        return (f"UPDATE observability_destinations SET {sets} WHERE id = ? AND account_id = ?",
                (*(row[c] for c in _CHANGEABLE), row["id"], row["account_id"]))

    @staticmethod
    def delete(destination_id: str, account_id: str) -> Op:
        return ("DELETE FROM observability_destinations WHERE id = ? AND account_id = ?", (destination_id, account_id))

    async def of_account(self, account_id: str) -> list[dict[str, Any]]:
        rows = await self.store.fetch(f"{_SELECT} WHERE account_id = ? ORDER BY created_at, id", (account_id,))
        return [_row(r) for r in rows]

    async def get(self, destination_id: str, account_id: str) -> dict[str, Any] | None:
        rows = await self.store.fetch(f"{_SELECT} WHERE id = ? AND account_id = ?", (destination_id, account_id))
        return _row(rows[0]) if rows else None

    def enabled_now(self) -> list[dict[str, Any]]:
        """Every enabled destination, at start-up (a blocking read)."""
        return [_row(r) for r in self.store.fetch_now(f"{_SELECT} WHERE enabled = 1 ORDER BY created_at, id")]
