"""Credit leases in the store: the slices of an account's balance, and of a key's limit, that one process
may spend without asking the store again (ledger/leases.py decides their sizes).

What no process holds is the store's to lease: an account's free credit is its ledger balance less every
lease's unspent part (``granted - spent``), a key's is its limit less the window's charges less the same.
A charge writes its ledger row and adds to its lease's ``spent`` in one transaction, so a charge changes
neither number, and a lease deleted with its holder (returned, expired or reclaimed after a crash) frees
exactly what was left of it: everything it spent is already in the ledger.

Every grow is conditional on the free credit in the statement itself, after a row lock on the account
(``UPDATE accounts SET name = name``: SQLite's writes are serialized anyway, PostgreSQL's row lock makes
two grows for one account take turns), so no interleaving of processes can lease more than there is."""

from __future__ import annotations

from typing import NamedTuple

from routeway.store.base import Op, Store
from routeway.store.ledger import LedgerEntry

_ACCOUNT_FREE = ("((SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = ?)"
                 " - (SELECT COALESCE(SUM(granted_nano - spent_nano), 0) FROM credit_leases"
                 " WHERE account_id = ? AND key_hash IS NULL))")
_KEY_FREE = ("((SELECT limit_nano FROM api_keys WHERE hash = ?)"
             " - (SELECT COALESCE(SUM(-amount_nano), 0) FROM ledger"
             " WHERE account_id = ? AND created_at >= ? AND key_hash = ? AND kind = 'charge')"
             " - (SELECT COALESCE(SUM(granted_nano - spent_nano), 0) FROM credit_leases"
             " WHERE account_id = ? AND key_hash = ? AND window_start = ?))")
# A guardrail budget's leases: ``key_hash`` holds the budget's subject ("<key hash>:<guardrail id>"), so they
# count neither against the account (``key_hash IS NULL``) nor against the key's own limit (its bare hash);
# the limit comes from the guardrail's rules, which the process passes in.
_BUDGET_FREE = ("(? - (SELECT COALESCE(SUM(-amount_nano), 0) FROM ledger"
                " WHERE account_id = ? AND created_at >= ? AND key_hash = ? AND kind = 'charge')"
                " - (SELECT COALESCE(SUM(granted_nano - spent_nano), 0) FROM credit_leases"
                " WHERE account_id = ? AND key_hash = ? AND window_start = ?))")
_COLUMNS = ("id", "holder", "account_id", "key_hash", "window_start", "granted_nano", "spent_nano", "expires_at")


class LeaseRow(NamedTuple):
    id: str
    holder: str
    account_id: str
    key_hash: str | None
    window_start: int  # ms; 0 for an account's lease and a key limit without reset
    granted_nano: int
    spent_nano: int
    expires_at: int  # ms


def _account_free_params(account_id: str) -> tuple[str, str]:
    return (account_id, account_id)


def _key_free_params(account_id: str, key_hash: str, window_start: int) -> tuple[object, ...]:
    return (key_hash, account_id, window_start, key_hash, account_id, key_hash, window_start)


def _budget_free_params(account_id: str, key_hash: str, subject: str, window_start: int,
                        limit: int) -> tuple[object, ...]:
    return (limit, account_id, window_start, key_hash, account_id, subject, window_start)


class LeaseRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- ops (for store.write) --------------------------------------------------------------------
    @staticmethod
    def lock_account(account_id: str) -> Op:
        """First in a transaction that leases from ``account_id``: PostgreSQL row-locks the account, so
        concurrent grows take turns; a no-op update on SQLite, whose writers are serialized already."""
        return ("UPDATE accounts SET name = name WHERE id = ?", (account_id,))

    @staticmethod
    def open(row: LeaseRow) -> Op:
        return (f"INSERT INTO credit_leases ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
                " ON CONFLICT (id) DO NOTHING", tuple(row))

    @staticmethod
    def grow_account(lease_id: str, holder: str, account_id: str, amount: int, expires_at: int) -> Op:
        """Add ``amount`` to the lease only if the account has that much free credit."""
        return (f"UPDATE credit_leases SET granted_nano = granted_nano + ?, expires_at = ? WHERE id = ? AND holder = ?"
                f" AND {_ACCOUNT_FREE} >= ?",
                (amount, expires_at, lease_id, holder, *_account_free_params(account_id), amount))

    @staticmethod
    def grow_key(lease_id: str, holder: str, account_id: str, key_hash: str, window_start: int, amount: int,
                 expires_at: int) -> Op:
        """Add ``amount`` to the key's lease only if the key's limit has that much left in the window."""
        return (f"UPDATE credit_leases SET granted_nano = granted_nano + ?, expires_at = ? WHERE id = ? AND holder = ?"
                f" AND {_KEY_FREE} >= ?",
                (amount, expires_at, lease_id, holder, *_key_free_params(account_id, key_hash, window_start), amount))

    @staticmethod
    def grow_budget(lease_id: str, holder: str, account_id: str, key_hash: str, subject: str, window_start: int,
                    limit: int, amount: int, expires_at: int) -> Op:
        """Add ``amount`` to a budget's lease only if the budget (``limit`` in the window) has that much left."""
        return (f"UPDATE credit_leases SET granted_nano = granted_nano + ?, expires_at = ? WHERE id = ? AND holder = ?"
                f" AND {_BUDGET_FREE} >= ?",
                (amount, expires_at, lease_id, holder,
                 *_budget_free_params(account_id, key_hash, subject, window_start, limit), amount))

    @staticmethod
    def spend(lease_id: str, amount: int) -> Op:
        """Written with the charge's ledger row, after it."""
        return ("UPDATE credit_leases SET spent_nano = spent_nano + ? WHERE id = ?", (amount, lease_id))

    @staticmethod
    def give_back(lease_id: str, holder: str, amount: int) -> Op:
        return ("UPDATE credit_leases SET granted_nano = granted_nano - ? WHERE id = ? AND holder = ?",
                (amount, lease_id, holder))

    @staticmethod
    def drop(lease_id: str, holder: str) -> Op:
        return ("DELETE FROM credit_leases WHERE id = ? AND holder = ?", (lease_id, holder))

    @staticmethod
    def renew(holder: str, expires_at: int) -> Op:
        return ("UPDATE credit_leases SET expires_at = ? WHERE holder = ?", (expires_at, holder))

    @staticmethod
    def release(holder: str) -> Op:
        """Every lease of ``holder`` (at its shutdown, or after its supervisor saw it die)."""
        return ("DELETE FROM credit_leases WHERE holder = ?", (holder,))

    @staticmethod
    def expire(now_ms: int) -> Op:
        """Leases whose holder stopped renewing them: what they had not spent is free again."""
        return ("DELETE FROM credit_leases WHERE expires_at < ?", (now_ms,))

    @staticmethod
    def take_back(entry: LedgerEntry) -> Op:
        """A negative grant, written only if the account's free credit covers it."""
        columns = ", ".join(LedgerEntry._fields)
        return (f"INSERT INTO ledger ({columns}) SELECT {', '.join('?' * len(LedgerEntry._fields))}"
                f" WHERE {_ACCOUNT_FREE} >= ?", (*entry, *_account_free_params(entry.account_id), -entry.amount_nano))

    # ---- reads --------------------------------------------------------------------------------------
    async def account_free(self, account_id: str) -> int:
        rows = await self.store.fetch(f"SELECT {_ACCOUNT_FREE}", _account_free_params(account_id))
        return int(rows[0][0] or 0)

    async def key_free(self, account_id: str, key_hash: str, window_start: int) -> int:
        rows = await self.store.fetch(f"SELECT {_KEY_FREE}", _key_free_params(account_id, key_hash, window_start))
        return int(rows[0][0] or 0)

    async def budget_free(self, account_id: str, key_hash: str, subject: str, window_start: int, limit: int) -> int:
        rows = await self.store.fetch(f"SELECT {_BUDGET_FREE}",
                                      _budget_free_params(account_id, key_hash, subject, window_start, limit))
        return int(rows[0][0] or 0)

    async def granted(self, lease_id: str) -> int:
        rows = await self.store.fetch("SELECT granted_nano FROM credit_leases WHERE id = ?", (lease_id,))
        return int(rows[0][0]) if rows else 0

    async def held_by(self, holder: str) -> set[str]:
        return {str(row[0]) for row in await self.store.fetch("SELECT id FROM credit_leases WHERE holder = ?",
                                                               (holder,))}

    async def ledger_has(self, entry_id: str) -> bool:
        return bool(await self.store.fetch("SELECT 1 FROM ledger WHERE id = ?", (entry_id,)))

    def all_now(self) -> list[LeaseRow]:
        return [LeaseRow(*row) for row in self.store.fetch_now(f"SELECT {', '.join(_COLUMNS)} FROM credit_leases")]
