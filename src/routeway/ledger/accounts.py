"""Accounts, keys and credit grants: each change is written to the store, then applied to the book.
A change the store cannot write is a 503 ``store_unavailable`` and changes nothing."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from routeway.errors import store_unavailable
from routeway.ledger.book import AccountState, Book, KeyState
from routeway.ledger.ids import new_id
from routeway.ledger.money import MAX_ACCOUNT_CREDITS_NANO, MAX_ACCOUNT_CREDITS_USD, NANO
from routeway.ledger.periods import RESETS, period_start_ms
from routeway.store.accounts import AccountRepository, AccountRow, KeyRow
from routeway.store.base import Op, Store, StoreUnwritable
from routeway.store.changes import ChangeRepository
from routeway.store.ledger import LedgerEntry, LedgerRepository

if TYPE_CHECKING:
    from routeway.ledger.leases import Leases

KEY_PREFIX = "sk-rw-v1-"


def now_ms() -> int:
    return int(time.time() * 1000)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Accounts:
    """The accounts book behind ``interfaces.AccountsBook``: balances and keys in this process's memory
    (``Book``), rebuilt from the store at start-up, changed only after the store has the change."""

    def __init__(self, store: Store, book: Book, leases: Leases | None = None) -> None:
        self.store = store
        self.book = book
        self.rows = AccountRepository(store)
        self.ledger = LedgerRepository(store)
        # Set when other processes share the store: this one spends only what it leased, and writes each
        # change to the change log, which the others follow (ledger/follow.py).
        self.leases = leases
        # told of each key this process learns of after the load (created here, found, or followed), so
        # what depends on keys (a guardrail's budgets, teams/guardrails.py) covers it at once
        self.key_listeners: list[Callable[[KeyState], None]] = []

    def key_added(self, key: KeyState) -> None:
        for listener in self.key_listeners:
            listener(key)

    # ---- start-up -------------------------------------------------------------------------------
    def load(self) -> None:
        now = now_ms()
        book = self.book
        for account in self.rows.all_now():
            book.accounts[account.id] = AccountState(account.id, account.name, account.created_at)
        for account_id, (credits, usage) in self.ledger.balances_now().items():
            book.accounts[account_id].credits = credits
            book.accounts[account_id].usage = usage
        for row in self.rows.keys_now():
            book.keys[row.hash] = KeyState(**row._asdict())
        starts = [period_start_ms(reset, now) for reset in RESETS]
        for key_hash, charges in self.ledger.key_charges_now(starts).items():
            key = book.keys.get(key_hash)
            if key is not None:
                key.usage = charges.total
                for reset, start, amount in zip(RESETS, starts, charges.since, strict=True):
                    key.windows[reset] = [start, amount]
        if self.leases is not None:
            self.leases.attach_all()

    # ---- lookups (interfaces.AccountsBook) --------------------------------------------------------
    def get(self, account_id: str) -> AccountState | None:
        account = self.book.accounts.get(account_id)
        if account is None and self.leases is not None:
            account = self._read_account(account_id)
        return account

    def all(self) -> list[AccountState]:
        return list(self.book.accounts.values())

    def of_key(self, key: KeyState) -> AccountState:
        return self.book.accounts[key.account_id]

    def key(self, key_hash: str) -> KeyState | None:
        key = self.book.keys.get(key_hash)
        if key is None and self.leases is not None:
            key = self._read_key(key_hash)
        return key

    def keys_of(self, account_id: str) -> list[KeyState]:
        keys = [k for k in self.book.keys.values() if k.account_id == account_id and not k.deleted]
        return sorted(keys, key=lambda k: k.created_at)

    def find_key(self, secret: str) -> KeyState | None:
        # The dict lookup by the secret's SHA-256 is the comparison. It is not constant-time, but what its
        # timing could leak is how much of a stored digest a guess's digest shares, and digests of guesses
        # cannot be steered towards a stored one (that would be a SHA-256 preimage): no secret leaks. An
        # hmac.compare_digest of the found key's hash with the same digest compared a value with itself.
        key = self.key(hash_key(secret))
        if key is None or key.deleted:
            return None
        return key

    # ---- read-through, with the store shared: made by another process less than a poll ago --------------
    # One primary-key read, blocking, on a miss only (an unknown key or account): the change log would bring
    # it within a poll, but a client that creates a key through one worker may use it at once on another.
    def _read_account(self, account_id: str) -> AccountState | None:
        row = self.rows.account_now(account_id)
        if row is None:
            return None
        account = AccountState(row.id, row.name, row.created_at)
        account.credits, account.usage = self.ledger.balances_now(account_id).get(account_id, (0, 0))
        assert self.leases is not None
        self.leases.attach(account=account)
        return self.book.accounts.setdefault(account_id, account)

    def _read_key(self, key_hash: str) -> KeyState | None:
        row = self.rows.key_now(key_hash)
        if row is None or (row.account_id not in self.book.accounts and self._read_account(row.account_id) is None):
            return None
        key = KeyState(**row._asdict())
        assert self.leases is not None
        self.leases.attach(key=key)
        if key_hash not in self.book.keys:
            self.book.keys[key_hash] = key
            self.key_added(key)
        return self.book.keys[key_hash]

    # ---- changes --------------------------------------------------------------------------------
    def _logged(self, ops: list[Op], kind: str, subject: str) -> list[Op]:
        """With the store shared, the change goes to the change log in the same transaction."""
        if self.leases is not None:
            ops.append(ChangeRepository.append(kind, subject, now_ms()))
        return ops

    async def _write(self, ops: list[Op]) -> None:
        try:
            await self.store.write(ops)
        except StoreUnwritable as unwritable:
            raise store_unavailable(unwritable.problem) from None

    async def create_account(self, name: str, credits: int = 0) -> AccountState:
        """The account and its initial credits in one write: both or neither."""
        account = AccountState(new_id("acct"), name, now_ms())
        ops: list[Op] = [self.rows.insert(AccountRow(account.id, account.name, account.created_at))]
        if credits:
            ops.append(self.ledger.insert(self._grant_entry(account, credits, "initial credits")))
        await self._write(self._logged(ops, "account", account.id))
        account.credits = credits
        if self.leases is not None:
            self.leases.attach(account=account)
        self.book.accounts[account.id] = account
        return account

    async def grant(self, account: AccountState, amount: int, note: str) -> LedgerEntry:
        """Add (or, negative, take back) credits; a take-back may not exceed what is available, and an
        account's credits may not pass MAX_ACCOUNT_CREDITS_USD (so every sum over its ledger fits int64)."""
        if amount < 0 and account.available + amount < 0:
            raise ValueError(f"cannot remove {-amount} nano-USD: only {account.available} available")
        if amount > 0 and account.credits + amount > MAX_ACCOUNT_CREDITS_NANO:
            raise ValueError(f"an account's grants may not pass ${MAX_ACCOUNT_CREDITS_USD:,} in all; this account"
                             f" has been granted ${account.credits / NANO:,.9f}")
        entry = self._grant_entry(account, amount, note)
        if self.leases is not None:
            await self._grant_shared(account, entry)
        else:
            # A take-back is held while it is written, so no reservation can spend credit that is going away.
            held = max(0, -amount)
            account.reserved += held
            try:
                await self._write([self.ledger.insert(entry)])
            finally:
                account.reserved -= held
        # As the book is rebuilt at start-up: credits are the positive rows, usage the negative ones. So
        # ``credits`` bounds every SUM over the account's rows, whatever grants and take-backs came before.
        if amount >= 0:
            account.credits += amount
        else:
            account.usage -= amount
        return entry

    async def _grant_shared(self, account: AccountState, entry: LedgerEntry) -> None:
        """With the store shared, a take-back may only take credit no process has leased: this one gives its
        unreserved lease back first, and the row is written only if the free credit covers it."""
        assert self.leases is not None
        if entry.amount_nano >= 0:
            await self._write(self._logged([self.ledger.insert(entry)], "account", account.id))
            return
        try:
            await self.leases.give_back_account(account)
        except StoreUnwritable as unwritable:
            raise store_unavailable(unwritable.problem) from None
        await self._write(self._logged([self.leases.rows.lock_account(account.id),
                                        self.leases.rows.take_back(entry)], "account", account.id))
        if not await self.leases.rows.ledger_has(entry.id):
            free = await self.leases.rows.account_free(account.id)
            raise ValueError(f"cannot remove {-entry.amount_nano} nano-USD: only {max(0, free)} available"
                             " (credit reserved by requests in flight on any worker cannot be taken back)")

    @staticmethod
    def _grant_entry(account: AccountState, amount: int, note: str) -> LedgerEntry:
        return LedgerEntry(id=new_id("led"), account_id=account.id, key_hash=None,
                           kind="grant" if amount >= 0 else "revoke", amount_nano=amount, generation_id=None,
                           note=note, created_at=now_ms())

    async def create_key(self, account: AccountState, *, name: str, is_management: bool, limit: int | None = None,
                         limit_reset: str | None = None, include_byok_in_limit: bool = False,
                         expires_at: int | None = None) -> tuple[str, KeyState]:
        secret = KEY_PREFIX + secrets.token_hex(32)
        row = KeyRow(hash=hash_key(secret), account_id=account.id, name=name, label=f"{secret[:12]}...{secret[-3:]}",
                     is_management=is_management, limit=limit, limit_reset=limit_reset,
                     include_byok_in_limit=include_byok_in_limit, expires_at=expires_at, disabled=False,
                     deleted=False, created_at=now_ms(), updated_at=None)
        await self._write(self._logged([self.rows.insert_key(row)], "key", row.hash))
        key = KeyState(**row._asdict())
        if self.leases is not None:
            self.leases.attach(key=key)
        self.book.keys[key.hash] = key
        self.key_added(key)
        return secret, key

    async def update_key(self, key: KeyState, changes: Mapping[str, Any]) -> KeyState:
        allowed = {"name", "disabled", "limit", "limit_reset", "include_byok_in_limit", "deleted"}
        updated = {k: v for k, v in changes.items() if k in allowed}
        updated["updated_at"] = now_ms()
        await self._write(self._logged([self.rows.update_key(key.hash, updated)], "key", key.hash))
        for name, value in updated.items():
            setattr(key, name, value)
        if self.leases is not None and set(updated) & {"limit", "limit_reset", "disabled", "deleted"}:
            with contextlib.suppress(StoreUnwritable):  # then it expires, or goes back at the next change
                await self.leases.give_back_key(key)  # the next request leases under the new terms
        return key
