"""Following the change log, so an account or key changed through one process is seen by every other
process sharing the store within a poll (``POLL_SECONDS``): one indexed read of the rows after the last id
seen. A changed key is read back whole (a deleted or disabled key is refused from then on); a changed
account has its name and its balance read back (credits and usage are for display: what a process may
spend is its lease). Other kinds of change (an account's response-cache default, an observability
destination, a guardrail, a preset) go to the handler their owner registered with ``on``; a kind nobody
handles (written by a newer replica during a rolling deploy) is passed over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from routeway.ledger.accounts import Accounts
from routeway.ledger.book import AccountState, KeyState
from routeway.store.base import StoreUnwritable
from routeway.store.changes import Change, ChangeRepository

log = logging.getLogger("routeway.ledger")

POLL_SECONDS = 0.25
_KEY_TERMS = ("limit", "limit_reset", "disabled", "deleted")


class ChangeFollower:
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.changes = ChangeRepository(accounts.store)
        self.last_id = 0
        self.handlers: dict[str, Callable[[str], Awaitable[None]]] = {}

    def on(self, kind: str, handler: Callable[[str], Awaitable[None]]) -> None:
        """``handler(subject)`` reads the subject's state back from the store and applies it; it runs for
        this process's own changes too, so it must be idempotent."""
        self.handlers[kind] = handler

    def start_now(self) -> None:
        """Before the book is loaded: every change after this point is applied on top of the load."""
        self.last_id = self.changes.last_id_now()

    async def poll(self) -> int:
        """Apply every change since the last poll; returns how many there were."""
        changes = await self.changes.after(self.last_id)
        for change in changes:
            await self._apply(change)
            self.last_id = change.id
        return len(changes)

    async def _apply(self, change: Change) -> None:
        if change.kind == "account":
            await self._account(change.subject)
        elif change.kind == "key":
            await self._key(change.subject)
        elif (handler := self.handlers.get(change.kind)) is not None:
            await handler(change.subject)

    async def _account(self, account_id: str) -> AccountState | None:
        accounts = self.accounts
        row = await accounts.rows.account(account_id)
        if row is None:
            return None
        account = accounts.book.accounts.get(account_id)
        if account is None:
            account = accounts.book.accounts[account_id] = AccountState(row.id, row.name, row.created_at)
            if accounts.leases is not None:
                accounts.leases.attach(account=account)
        account.name = row.name
        account.credits, account.usage = await accounts.ledger.balance(account_id)
        return account

    async def _key(self, key_hash: str) -> None:
        accounts = self.accounts
        row = await accounts.rows.key(key_hash)
        if row is None:
            return
        if row.account_id not in accounts.book.accounts:
            await self._account(row.account_id)
        key = accounts.book.keys.get(key_hash)
        if key is None:
            key = accounts.book.keys[key_hash] = KeyState(**row._asdict())
            if accounts.leases is not None:
                accounts.leases.attach(key=key)
            accounts.key_added(key)
            return
        terms = tuple(getattr(key, name) for name in _KEY_TERMS)
        for name, value in row._asdict().items():
            setattr(key, name, value)  # in place: reservations in flight hold this object
        if accounts.leases is not None and terms != tuple(getattr(key, name) for name in _KEY_TERMS):
            with contextlib.suppress(StoreUnwritable):
                await accounts.leases.give_back_key(key)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.poll()
            except Exception:  # a bad row or a busy store must not stop following
                log.exception("following the change log failed")
