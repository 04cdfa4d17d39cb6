"""The change log: one row per account or key change (created, granted, limit changed, disabled, deleted)
and per change of a setting every process holds in memory (an account's response-cache default, an
observability destination), written in the change's own transaction, so every process sharing the store
can follow it (ledger/follow.py) with one indexed read of the rows after the last id it saw. Ids follow
commit order."""

from __future__ import annotations

from typing import NamedTuple

from routeway.store.base import Op, Store

BATCH = 1000


class Change(NamedTuple):
    id: int
    kind: str  # "account", "key", "response_cache" (an account's default) or "destination"
    subject: str  # the account id, the key hash or the destination id


class ChangeRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def append(kind: str, subject: str, at_ms: int) -> Op:
        # The next id in the change's own transaction, so ids follow commit order and a follower reading
        # "after the last id it saw" never skips a row that commits late with a smaller id. SQLite's writers
        # take turns (BEGIN IMMEDIATE); on PostgreSQL two changes at once collide on the primary key (the
        # second waits for the first to commit, then fails) and the store replays the loser
        # (store/postgres.py ``lost_a_race``), which then reads the new last id.
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
