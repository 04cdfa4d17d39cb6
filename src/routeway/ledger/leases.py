"""Credit leases: how a process that shares the store with others spends credit without asking the store
on every request, and never more than there is (store/leases.py has the table and the arithmetic in SQL).

Each process reserves per request from its own leases in memory, exactly as a lone process reserves from
the whole balance (ledger/book.py). When a reservation does not fit, the request waits for ``cover``: one
conditional write grows the process's lease on the account (and on the key, when it has a limit) by a
slice of what is free, and the reservation is tried again. Slices shrink as the free credit does
(``slice_size``), so the last cents go to whoever asks for them, not to a process that took a big slice
early. Every second the process renews its leases (they expire ``LEASE_TTL_MS`` after the last renewal,
so a process that died without its supervisor seeing it frees them), gives back the unreserved part of
leases it did not use since the last beat, and deletes other processes' expired leases. At shutdown it
deletes its own. A lease deleted in any of these ways frees exactly its unspent part: its charges are in
the ledger already, written in the same transactions as its ``spent``.

A key's guardrail budgets (teams/guardrails.py) are leased like its limit, one lease per budget and
window, so a budget holds across processes exactly as a key limit does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from routeway.ledger.book import AccountState, Book, Budget, KeyState
from routeway.store.base import Op, Store, StoreUnwritable
from routeway.store.changes import ChangeRepository
from routeway.store.leases import LeaseRepository, LeaseRow
from routeway.store.ledger import LedgerRepository

log = logging.getLogger("routeway.ledger")


def now_ms() -> int:
    return int(time.time() * 1000)


def monotonic() -> float:
    return time.monotonic()

HEARTBEAT_SECONDS = 1.0
LEASE_TTL_MS = 15_000  # a lease not renewed for this long is freed by whoever sees it first
CHANGES_KEPT_MS = 3_600_000
BALANCE_REFRESH_COST = 20  # the displayed balance takes at most ~5% of a core per account and process
GROW_TRIES = 3  # a grow that lost the free credit to another process's grow is retried with the new numbers


def slice_size(need: int, free: int, processes: int) -> int:
    """How much to lease when ``need`` more is wanted now and ``free`` is unleased: nothing when even ``need``
    is not free (a request that cannot be served does not hoard), else ``need`` and a share of the free
    credit on top (half of it split between the processes, so together they never lease it all at once)."""
    if need <= 0 or free < need:
        return 0
    return min(free, need + free // (2 * max(1, processes)))


class Leases:
    def __init__(self, store: Store, book: Book, holder: str, processes: int) -> None:
        self.store = store
        self.book = book
        self.holder = holder
        self.processes = processes
        self.rows = LeaseRepository(store)
        self.changes = ChangeRepository(store)
        self.ledger = LedgerRepository(store)
        self.granted: dict[str, int] = {}  # lease id -> granted_nano as this process last wrote it
        self.locks: dict[str, asyncio.Lock] = {}
        self.free_seen: dict[str, int] = {}  # account id or key hash -> what the store had free at the last grow
        self.idle_marks: dict[str, int | None] = {}  # account id -> its lease at the last beat (unchanged: idle)
        self.balance_due: dict[str, float] = {}  # account id -> when its displayed balance is read again
        self.budget_marks: dict[str, int] = {}  # budget lease id -> what was left of it at the last beat

    # ---- ids --------------------------------------------------------------------------------------
    def account_lease(self, account_id: str) -> str:
        return f"{self.holder}/a/{account_id}"

    def key_lease(self, key: KeyState) -> str:
        return f"{self.holder}/k/{key.hash}/{key.lease_window}"

    @staticmethod
    def budget_subject(key: KeyState, budget: Budget) -> str:
        return f"{key.hash}:{budget.guardrail_id}"

    def budget_lease(self, subject: str, window: int) -> str:
        return f"{self.holder}/b/{subject}/{window}"

    # ---- the book in lease mode -------------------------------------------------------------------
    def attach(self, account: AccountState | None = None, key: KeyState | None = None) -> None:
        """A process sharing the store starts with nothing leased: every account and key it learns of too."""
        if account is not None and account.leased is None:
            account.leased = 0
        if key is not None and key.leased is None:
            key.leased = 0

    def attach_all(self) -> None:
        for account in self.book.accounts.values():
            self.attach(account=account)
        for key in self.book.keys.values():
            self.attach(key=key)

    def spend_ops(self, account: AccountState, key: KeyState, charge: int) -> list[Op]:
        """Written after the charge's ledger row, in its transaction: the leases' ``spent`` follows the ledger."""
        ops = [self.rows.spend(self.account_lease(account.id), charge)]
        if key.limit is not None and key.leased is not None:
            ops.append(self.rows.spend(self.key_lease(key), charge))
        for budget in key.budgets:
            lease = key.budget_leases.get(budget.guardrail_id)
            if lease is not None:
                ops.append(self.rows.spend(self.budget_lease(self.budget_subject(key, budget), lease[0]), charge))
        return ops

    # ---- growing ------------------------------------------------------------------------------------
    async def cover(self, key: KeyState, amount: int) -> None:
        """Grow this process's leases so that ``amount`` can be reserved for ``key``, as far as the store has
        free credit; the caller then tries the reservation again (and answers 402 if it still does not fit)."""
        account = self.book.accounts[key.account_id]
        await self._grow_account(account, amount)
        if key.limit is not None:
            await self._grow_key(account, key, amount)
        for budget in key.budgets:
            await self._grow_budget(account, key, budget, amount)

    def unleased(self, subject: str) -> int:
        """What the store had free for an account (its id) or a key (its hash) at this process's last grow:
        with what this process holds, what a 402 says is left."""
        return max(0, self.free_seen.get(subject, 0))

    def _lock(self, lease_id: str) -> asyncio.Lock:
        lock = self.locks.get(lease_id)
        if lock is None:
            lock = self.locks[lease_id] = asyncio.Lock()
        return lock

    async def _grow_account(self, account: AccountState, amount: int) -> None:
        lease_id = self.account_lease(account.id)
        async with self._lock(lease_id):
            for _ in range(GROW_TRIES):
                need = amount - account.available
                if need <= 0:
                    return
                free = self.free_seen[account.id] = await self.rows.account_free(account.id)
                added = await self._take_slice(lease_id, account.id, None, 0, need, free)
                if added is None:
                    return
                account.leased = (account.leased or 0) + added  # after the await: charges may land during it

    async def _grow_key(self, account: AccountState, key: KeyState, amount: int) -> None:
        async with self._lock(f"k/{key.hash}"):
            window = key.window_start(now_ms())
            if key.lease_window != window:  # a new limit window: the old window's lease is of no use any more
                old = self.key_lease(key)
                if old in self.granted:
                    with contextlib.suppress(StoreUnwritable):
                        await self.store.write([self.rows.drop(old, self.holder)])
                    self.granted.pop(old, None)
                key.lease_window, key.leased = window, 0
            lease_id = self.key_lease(key)
            for _ in range(GROW_TRIES):
                remaining = key.limit_remaining(now_ms())
                if remaining is None:
                    return
                need = amount - remaining
                if need <= 0:
                    return
                free = self.free_seen[key.hash] = await self.rows.key_free(account.id, key.hash, window)
                added = await self._take_slice(lease_id, account.id, key.hash, window, need, free)
                if added is None:
                    return
                key.leased = (key.leased or 0) + added

    async def _grow_budget(self, account: AccountState, key: KeyState, budget: Budget, amount: int) -> None:
        subject = self.budget_subject(key, budget)
        async with self._lock(f"b/{subject}"):
            window = budget.window_start(now_ms())
            lease = key.budget_leases.get(budget.guardrail_id)
            if lease is None or lease[0] != window:  # a new budget window: the old window's lease is of no use
                if lease is not None:
                    old = self.budget_lease(subject, lease[0])
                    if old in self.granted:
                        with contextlib.suppress(StoreUnwritable):
                            await self.store.write([self.rows.drop(old, self.holder)])
                        self.granted.pop(old, None)
                lease = key.budget_leases[budget.guardrail_id] = [window, 0]
            lease_id = self.budget_lease(subject, window)
            for _ in range(GROW_TRIES):
                need = amount - key.budget_remaining(budget, now_ms())
                if need <= 0:
                    return
                free = self.free_seen[subject] = await self.rows.budget_free(account.id, key.hash, subject, window,
                                                                             budget.limit)
                grant = slice_size(need, free, self.processes)
                if grant <= 0:
                    return
                expires = now_ms() + LEASE_TTL_MS
                await self.store.write([
                    self.rows.lock_account(account.id),
                    self.rows.open(LeaseRow(lease_id, self.holder, account.id, subject, window, 0, 0, expires)),
                    self.rows.grow_budget(lease_id, self.holder, account.id, key.hash, subject, window, budget.limit,
                                          grant, expires)])
                lease[1] += await self._granted_since(lease_id)

    async def give_back_budgets(self, key: KeyState) -> None:
        """The unreserved part of each budget lease of the key (its guardrails changed): the next request
        leases again under the new terms."""
        for guardrail_id, lease in list(key.budget_leases.items()):
            subject = f"{key.hash}:{guardrail_id}"
            async with self._lock(f"b/{subject}"):
                await self._give_back_budget(self.budget_lease(subject, lease[0]), lease, lease[1] - key.reserved)

    async def _give_back_budget(self, lease_id: str, lease: list[int], amount: int) -> None:
        if amount <= 0 or lease_id not in self.granted:
            return
        lease[1] -= amount  # before the write: nobody reserves it meanwhile
        try:
            await self.store.write([self.rows.give_back(lease_id, self.holder, amount)])
        except BaseException:
            lease[1] += amount
            raise
        self.granted[lease_id] -= amount
    async def _take_slice(self, lease_id: str, account_id: str, key_hash: str | None, window: int, need: int,
                          free: int) -> int | None:
        """Grow an account's lease (``key_hash`` None) or a key's by a slice of ``free`` toward ``need``: what
        the lease gained (0 when another process's grow took the credit first), None when there is none to take."""
        grant = slice_size(need, free, self.processes)
        if grant <= 0:
            return None
        expires = now_ms() + LEASE_TTL_MS
        grow = (self.rows.grow_account(lease_id, self.holder, account_id, grant, expires) if key_hash is None
                else self.rows.grow_key(lease_id, self.holder, account_id, key_hash, window, grant, expires))
        await self.store.write([
            self.rows.lock_account(account_id),
            self.rows.open(LeaseRow(lease_id, self.holder, account_id, key_hash, window, 0, 0, expires)),
            grow])
        return await self._granted_since(lease_id)

    async def _granted_since(self, lease_id: str) -> int:
        """How much the last write added to the lease (0 when another process's grow took the credit first).
        Only this process changes its leases' ``granted``, and one grow at a time per lease (the lock)."""
        granted = await self.rows.granted(lease_id)
        added = granted - self.granted.get(lease_id, 0)
        self.granted[lease_id] = granted
        return added

    # ---- giving back --------------------------------------------------------------------------------
    async def give_back_account(self, account: AccountState) -> None:
        """The unreserved part of the account's lease, back to the store (idle, or before a take-back)."""
        lease_id = self.account_lease(account.id)
        async with self._lock(lease_id):
            amount = account.available
            if amount <= 0 or lease_id not in self.granted:
                return
            await self._give_back(lease_id, amount, account)

    async def give_back_key(self, key: KeyState) -> None:
        """The unreserved part of the key's lease (its limit changed, or it was disabled or deleted)."""
        async with self._lock(f"k/{key.hash}"):
            lease_id = self.key_lease(key)
            amount = (key.leased or 0) - key.reserved
            if amount <= 0 or lease_id not in self.granted:
                return
            await self._give_back(lease_id, amount, key)

    async def _give_back(self, lease_id: str, amount: int, holder: AccountState | KeyState) -> None:
        holder.leased = (holder.leased or 0) - amount  # before the write: nobody reserves it meanwhile
        try:
            await self.store.write([self.rows.give_back(lease_id, self.holder, amount)])
        except BaseException:
            holder.leased += amount
            raise
        self.granted[lease_id] -= amount

    # ---- the heartbeat ------------------------------------------------------------------------------
    async def beat(self) -> None:
        now = now_ms()
        await self.store.write([self.rows.renew(self.holder, now + LEASE_TTL_MS), self.rows.expire(now),
                                self.changes.prune(now - CHANGES_KEPT_MS)])
        await self._forget_lost()
        for lease_id in list(self.granted):
            _, kind, subject = lease_id.split("/", 3)[:3]
            if kind == "b":
                await self._give_back_idle_budget(lease_id, subject)
            if kind != "a":
                continue
            account = self.book.accounts.get(subject)
            if account is None:
                continue
            if self.idle_marks.get(subject) == account.leased and account.reserved == 0:
                await self.give_back_account(account)
            self.idle_marks[subject] = account.leased
            await self._refresh_balance(account)

    async def _refresh_balance(self, account: AccountState) -> None:
        """What every process charged, for display (what this one may spend is its lease). It is a sum over
        the account's ledger rows, so it costs more as the ledger grows (~35 ms per 200,000 rows, at every
        beat of every process: bench/NOTES.md step 36); after a refresh that took T it waits
        ``BALANCE_REFRESH_COST`` × T before the next, so a long ledger's balance is shown a little later
        instead of taking ever more of the workers' CPU."""
        started = monotonic()
        if started < self.balance_due.get(account.id, 0.0):
            return
        account.credits, account.usage = await self.ledger.balance(account.id)
        self.balance_due[account.id] = started + (monotonic() - started) * BALANCE_REFRESH_COST

    async def _forget_lost(self) -> None:
        """Leases another process deleted as expired (this one was stalled for ``LEASE_TTL_MS``): their credit
        may be leased to others now, so this process holds nothing of them any more."""
        held = await self.rows.held_by(self.holder)
        for lease_id in [lease_id for lease_id in self.granted if lease_id not in held]:
            log.warning("credit lease %s expired while this process was stalled; it leases anew", lease_id)
            del self.granted[lease_id]
            _, kind, subject = lease_id.split("/")[:3]
            if kind == "b":
                self._forget_budget_lease(lease_id, subject)
                continue
            state = self.book.accounts.get(subject) if kind == "a" else self.book.keys.get(subject)
            if state is not None and (kind == "a" or lease_id == self.key_lease(state)):  # type: ignore[arg-type]
                state.leased = 0

    async def _give_back_idle_budget(self, lease_id: str, subject: str) -> None:
        """A budget slice unused since the last beat goes back, so another process can spend it."""
        key_hash, _, guardrail_id = subject.partition(":")
        key = self.book.keys.get(key_hash)
        lease = key.budget_leases.get(guardrail_id) if key is not None else None
        if key is None or lease is None or lease_id != self.budget_lease(subject, lease[0]):
            return
        if self.budget_marks.get(lease_id) == lease[1] and key.reserved == 0 and lease[1] > 0:
            async with self._lock(f"b/{subject}"):
                await self._give_back_budget(lease_id, lease, lease[1] - key.reserved)
        self.budget_marks[lease_id] = lease[1]

    def _forget_budget_lease(self, lease_id: str, subject: str) -> None:
        key_hash, _, guardrail_id = subject.partition(":")
        key = self.book.keys.get(key_hash)
        lease = key.budget_leases.get(guardrail_id) if key is not None else None
        if lease is not None and lease_id == self.budget_lease(subject, lease[0]):
            lease[1] = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.beat()
            except StoreUnwritable:
                pass  # the store says so once; the leases are renewed at the next beat that can write
            except Exception:
                log.exception("renewing credit leases failed")

    async def release(self) -> None:
        """At shutdown, after the last settlement: every lease of this process, unspent part freed."""
        try:
            await self.store.write([self.rows.release(self.holder)])
        except StoreUnwritable:
            log.warning("could not return this process's credit leases: they expire in %d s", LEASE_TTL_MS // 1000)
        self.granted.clear()
