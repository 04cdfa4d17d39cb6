"""The append-only ledger in the store: every movement of credit is one row (grant positive, charge and
take-back negative). Balances are sums over it; nothing here updates or deletes a row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from routeway.store.base import Op, Store


class LedgerEntry(NamedTuple):
    id: str
    account_id: str
    key_hash: str | None
    kind: str  # grant, revoke, charge
    amount_nano: int
    generation_id: str | None
    note: str
    created_at: int  # ms


class KeyCharges(NamedTuple):
    total: int  # nano-USD charged to the key, all time
    since: tuple[int, ...]  # nano-USD charged since each of the starts asked for


# A row's id is random and written once; a retried write whose first attempt did land (the database
# committed but the answer was lost with the connection) must not add it twice: the retry is a no-op.
_INSERT = (f"INSERT INTO ledger ({', '.join(LedgerEntry._fields)})"
           f" VALUES ({', '.join('?' * len(LedgerEntry._fields))}) ON CONFLICT (id) DO NOTHING")


class LedgerRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def insert(entry: LedgerEntry) -> Op:
        return (_INSERT, tuple(entry))

    def balances_now(self, account_id: str | None = None) -> dict[str, tuple[int, int]]:
        """account id -> (credits: the positive rows, usage: the negative ones negated), for every account
        with rows (or the one asked for)."""
        where, params = ("WHERE account_id = ? ", (account_id,)) if account_id is not None else ("", ())
        rows = self.store.fetch_now(
            "SELECT account_id, SUM(CASE WHEN amount_nano > 0 THEN amount_nano ELSE 0 END),"
            f" SUM(CASE WHEN amount_nano < 0 THEN -amount_nano ELSE 0 END) FROM ledger {where}GROUP BY account_id",
            params)
        return {account: (int(credits or 0), int(usage or 0)) for account, credits, usage in rows}

    async def balance(self, account_id: str) -> tuple[int, int]:
        """(credits, usage) of one account, as ``balances_now`` counts them."""
        rows = await self.store.fetch(
            "SELECT SUM(CASE WHEN amount_nano > 0 THEN amount_nano ELSE 0 END),"
            " SUM(CASE WHEN amount_nano < 0 THEN -amount_nano ELSE 0 END) FROM ledger WHERE account_id = ?",
            (account_id,))
        return (int(rows[0][0] or 0), int(rows[0][1] or 0)) if rows else (0, 0)

    def key_charges_now(self, starts: Sequence[int]) -> dict[str, KeyCharges]:
        """key hash -> what was charged to it, all time and since each of ``starts`` (ms)."""
        windows = "".join(", SUM(CASE WHEN created_at >= ? THEN -amount_nano ELSE 0 END)" for _ in starts)
        rows = self.store.fetch_now(
            f"SELECT key_hash, SUM(-amount_nano){windows} FROM ledger"
            " WHERE kind = 'charge' AND key_hash IS NOT NULL GROUP BY key_hash", tuple(starts))
        return {row[0]: KeyCharges(int(row[1] or 0), tuple(int(v or 0) for v in row[2:])) for row in rows}

    def positive_charges_now(self) -> int:
        """Charge rows that are not debits: there must never be any (a charge cannot mint credit)."""
        return int(self.store.fetch_now("SELECT COUNT(*) FROM ledger WHERE kind = 'charge' AND amount_nano >= 0")[0][0])

    async def of_account(self, account_id: str) -> list[LedgerEntry]:
        rows = await self.store.fetch(f"SELECT {', '.join(LedgerEntry._fields)} FROM ledger WHERE account_id = ?"
                                      " ORDER BY created_at, id", (account_id,))
        return [LedgerEntry(*row) for row in rows]
