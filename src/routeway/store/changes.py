"""The change log: one row per account or key change (created, granted, limit changed, disabled, deleted),
written in the change's own transaction, so every process sharing the store can follow it (ledger/follow.py)
with one indexed read of the rows after the last id it saw. Ids follow commit order."""

from __future__ import annotations

from typing import NamedTuple

from routeway.store.base import Op, Store

BATCH = 1000


class Change(NamedTuple):
    id: int
    kind: str  # "account" or "key"
    subject: str  # the account id or the key hash


class ChangeRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def append(kind: str, subject: str, at_ms: int) -> Op:
        # The next id in the change's own transaction: SQLite's writers take turns, and on PostgreSQL two
        # changes at once collide on the primary key (one fails) rather than commit out of id order.
        return ("INSERT INTO store_changes (id, kind, subject, created_at)"
                " SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ? FROM store_changes", (kind, subject, at_ms))

    @staticmethod
    def prune(before_ms: int) -> Op:
        """Old rows, but never the newest: a follower's last id must stay below every id still to come."""
        return ("DELETE FROM store_changes WHERE created_at < ? AND id < (SELECT MAX(id) FROM store_changes)",
                (before_ms,))

    def last_id_now(self) -> int:
        return int(self.store.fetch_now("SELECT COALESCE(MAX(id), 0) FROM store_changes")[0][0])

    async def after(self, last_id: int) -> list[Change]:
        rows = await self.store.fetch("SELECT id, kind, subject FROM store_changes WHERE id > ? ORDER BY id LIMIT ?",
                                      (last_id, BATCH))
        return [Change(int(i), str(k), str(s)) for i, k, s in rows]
