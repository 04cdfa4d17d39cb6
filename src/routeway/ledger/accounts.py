"""Accounts, keys and credit grants: each change is written to the store, then applied to the book.
A change the store cannot write is a 503 ``store_unavailable`` and changes nothing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from routeway.errors import store_unavailable
from routeway.ledger.book import AccountState, Book, KeyState
from routeway.ledger.ids import new_id
from routeway.ledger.money import MAX_ACCOUNT_CREDITS_NANO, MAX_ACCOUNT_CREDITS_USD, NANO
from routeway.ledger.periods import RESETS, period_start_ms
from routeway.store.base import Op, Store, StoreUnwritable

KEY_PREFIX = "sk-rw-v1-"


def now_ms() -> int:
    return int(time.time() * 1000)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Accounts:
    def __init__(self, store: Store, book: Book) -> None:
        self.store = store
        self.book = book

    # ---- start-up -------------------------------------------------------------------------------
    def load(self) -> None:
        now = now_ms()
        book = self.book
        for id_, name, created in self.store.fetch_now("SELECT id, name, created_at FROM accounts"):
            book.accounts[id_] = AccountState(id_, name, created)
        for account_id, credits, usage in self.store.fetch_now(
            "SELECT account_id, SUM(CASE WHEN amount_nano > 0 THEN amount_nano ELSE 0 END),"
            " SUM(CASE WHEN amount_nano < 0 THEN -amount_nano ELSE 0 END) FROM ledger GROUP BY account_id"
        ):
            book.accounts[account_id].credits = int(credits or 0)
            book.accounts[account_id].usage = int(usage or 0)
        columns = "hash, account_id, name, label, is_management, limit_nano, limit_reset, include_byok_in_limit," \
                  " expires_at, disabled, deleted, created_at, updated_at"
        for row in self.store.fetch_now(f"SELECT {columns} FROM api_keys"):
            key = KeyState(hash=row[0], account_id=row[1], name=row[2], label=row[3], is_management=bool(row[4]),
                           limit=row[5], limit_reset=row[6], include_byok_in_limit=bool(row[7]),
                           expires_at=row[8], disabled=bool(row[9]), deleted=bool(row[10]),
                           created_at=row[11], updated_at=row[12])
            book.keys[key.hash] = key
        starts = [period_start_ms(reset, now) for reset in RESETS]
        for key_hash, total, daily, weekly, monthly in self.store.fetch_now(
            "SELECT key_hash, SUM(-amount_nano),"
            " SUM(CASE WHEN created_at >= ? THEN -amount_nano ELSE 0 END),"
            " SUM(CASE WHEN created_at >= ? THEN -amount_nano ELSE 0 END),"
            " SUM(CASE WHEN created_at >= ? THEN -amount_nano ELSE 0 END)"
            " FROM ledger WHERE kind = 'charge' AND key_hash IS NOT NULL GROUP BY key_hash", starts,
        ):
            key = book.keys.get(key_hash)
            if key is not None:
                key.usage = int(total or 0)
                for reset, start, amount in zip(RESETS, starts, (daily, weekly, monthly)):
                    key.windows[reset] = [start, int(amount or 0)]

    # ---- lookups --------------------------------------------------------------------------------
    def find_key(self, secret: str) -> KeyState | None:
        digest = hash_key(secret)
        key = self.book.keys.get(digest)
        if key is None or key.deleted or not hmac.compare_digest(key.hash, digest):
            return None
        return key

    # ---- changes --------------------------------------------------------------------------------
    async def _write(self, ops: list[Op]) -> None:
        try:
            await self.store.write(ops)
        except StoreUnwritable as unwritable:
            raise store_unavailable(unwritable.problem) from None

    async def create_account(self, name: str, credits: int = 0) -> AccountState:
        """The account and its initial credits in one write: both or neither."""
        account = AccountState(new_id("acct"), name, now_ms())
        ops: list[Op] = [("INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)",
                          (account.id, account.name, account.created_at))]
        if credits:
            ops.append(ledger_op(self._grant_entry(account, credits, "initial credits")))
        await self._write(ops)
        account.credits = credits
        self.book.accounts[account.id] = account
        return account

    async def grant(self, account: AccountState, amount: int, note: str) -> dict[str, Any]:
        """Add (or, negative, take back) credits; a take-back may not exceed what is available, and an
        account's credits may not pass MAX_ACCOUNT_CREDITS_USD (so every sum over its ledger fits int64)."""
        if amount < 0 and account.available + amount < 0:
            raise ValueError(f"cannot remove {-amount} nano-USD: only {account.available} available")
        if amount > 0 and account.credits + amount > MAX_ACCOUNT_CREDITS_NANO:
            raise ValueError(f"an account's grants may not pass ${MAX_ACCOUNT_CREDITS_USD:,} in all; this account"
                             f" has been granted ${account.credits / NANO:,.9f}")
        entry = self._grant_entry(account, amount, note)
        # A take-back is held while it is written, so no reservation can spend credit that is going away.
        held = max(0, -amount)
        account.reserved += held
        try:
            await self._write([ledger_op(entry)])
        finally:
            account.reserved -= held
        # As the book is rebuilt at start-up: credits are the positive rows, usage the negative ones. So
        # ``credits`` bounds every SUM over the account's rows, whatever grants and take-backs came before.
        if amount >= 0:
            account.credits += amount
        else:
            account.usage -= amount
        return entry

    @staticmethod
    def _grant_entry(account: AccountState, amount: int, note: str) -> dict[str, Any]:
        return {"id": new_id("led"), "account_id": account.id, "kind": "grant" if amount >= 0 else "revoke",
                "amount_nano": amount, "note": note, "created_at": now_ms()}

    async def create_key(self, account: AccountState, *, name: str, is_management: bool, limit: int | None = None,
                         limit_reset: str | None = None, include_byok_in_limit: bool = False,
                         expires_at: int | None = None) -> tuple[str, KeyState]:
        secret = KEY_PREFIX + secrets.token_hex(32)
        key = KeyState(hash=hash_key(secret), account_id=account.id, name=name,
                       label=f"{secret[:12]}...{secret[-3:]}", is_management=is_management, created_at=now_ms(),
                       limit=limit, limit_reset=limit_reset, include_byok_in_limit=include_byok_in_limit,
                       expires_at=expires_at)
        await self._write([(
            "INSERT INTO api_keys (hash, account_id, name, label, is_management, limit_nano, limit_reset,"
            " include_byok_in_limit, expires_at, disabled, deleted, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, NULL)",
            (key.hash, key.account_id, key.name, key.label, int(is_management), limit, limit_reset,
             int(include_byok_in_limit), expires_at, key.created_at),
        )])
        self.book.keys[key.hash] = key
        return secret, key

    async def update_key(self, key: KeyState, changes: dict[str, Any]) -> KeyState:
        allowed = {"name", "disabled", "limit", "limit_reset", "include_byok_in_limit", "deleted"}
        updated = {k: v for k, v in changes.items() if k in allowed}
        updated["updated_at"] = now_ms()
        columns = {"limit": "limit_nano"}
        assignments = ", ".join(f"{columns.get(k, k)} = ?" for k in updated)
        values = [int(v) if isinstance(v, bool) else v for v in updated.values()]
        await self._write([(f"UPDATE api_keys SET {assignments} WHERE hash = ?", (*values, key.hash))])
        for name, value in updated.items():
            setattr(key, name, value)
        return key


def ledger_op(entry: dict[str, Any]) -> Op:
    return ("INSERT INTO ledger (id, account_id, key_hash, kind, amount_nano, generation_id, note, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (entry["id"], entry["account_id"], entry.get("key_hash"), entry["kind"], entry["amount_nano"],
             entry.get("generation_id"), entry["note"], entry["created_at"]))
