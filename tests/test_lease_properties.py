"""Property tests for credit leases: three processes share one real SQLite store (each its own connection,
writer thread and book, as ``serve --workers 3``), and any interleaving of grants, take-backs, reservations
(alone, or several processes growing their leases at once), settlements with any usage an upstream may
report, heartbeats, change-log polls and crashes (the supervisor releases the dead process's leases, and a
new process starts from the ledger) keeps: the account never below zero and no key past its limit, every
process's leases in memory equal to its rows in the store, and what is leased never more than what is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from routeway.errors import APIError
from routeway.ledger.accounts import Accounts, now_ms
from routeway.ledger.book import Book, Reservation
from routeway.ledger.follow import ChangeFollower
from routeway.ledger.ids import new_generation_id
from routeway.ledger.leases import Leases, slice_size
from routeway.ledger.metering import GenerationRecord, Metering, NeedsLease
from routeway.store.leases import LeaseRepository
from routeway.store.sqlite import SQLiteStore

PRICE = 2_000_000_000  # nano-USD per 1M tokens ($2)
PROCESSES = 3
TOKENS = st.one_of(st.integers(0, 5_000), st.integers(-10**12, 10**15), st.sampled_from([0, -1, 2**62]))
LIMITS = ((None, None), (3_000_000, "daily"), (50_000_000, None))


@dataclass
class Process:
    holder: str
    store: SQLiteStore
    book: Book
    accounts: Accounts
    metering: Metering
    leases: Leases
    follower: ChangeFollower


class SharedMoney(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.path = Path(self.folder.name) / "routeway.sqlite3"
        self.loop = asyncio.new_event_loop()
        self.generation = 0
        self.processes = [self.start(i) for i in range(PROCESSES)]
        first = self.processes[0]
        account = self.run(first.accounts.create_account("prop", 20_000_000))
        self.account_id = account.id
        self.key_hashes = []
        for limit, reset in LIMITS:
            _, key = self.run(first.accounts.create_key(account, name="k", is_management=False, limit=limit,
                                                        limit_reset=reset))
            self.key_hashes.append(key.hash)
        for process in self.processes:
            self.run(process.follower.poll())
        self.open: list[tuple[int, Reservation]] = []

    def start(self, index: int) -> Process:
        self.generation += 1
        store = SQLiteStore(self.path, group_member=True)
        store.open()
        book = Book()
        holder = f"p{index}-{self.generation}"
        leases = Leases(store, book, holder, PROCESSES)
        accounts = Accounts(store, book, leases)
        follower = ChangeFollower(accounts)
        follower.start_now()
        accounts.load()
        return Process(holder, store, book, accounts, Metering(store, book, leases), leases, follower)

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        for process in self.processes:
            process.store.close()
        self.loop.close()
        self.folder.cleanup()

    # ---- rules ------------------------------------------------------------------------------------------
    @rule(p=st.integers(0, PROCESSES - 1), amount=st.integers(1, 30_000_000))
    def grant(self, p: int, amount: int) -> None:
        process = self.processes[p]
        self.run(process.accounts.grant(process.book.accounts[self.account_id], amount, "grant"))

    @rule(p=st.integers(0, PROCESSES - 1), amount=st.integers(1, 30_000_000))
    def take_back(self, p: int, amount: int) -> None:
        process = self.processes[p]
        with contextlib.suppress(ValueError):  # more than is free: refused, nothing written
            self.run(process.accounts.grant(process.book.accounts[self.account_id], -amount, "take back"))

    async def _reserve(self, p: int, which: int, amount: int) -> None:
        process = self.processes[p]
        key = process.book.keys[self.key_hashes[which]]
        try:
            try:
                reservation = process.metering.reserve(key, amount, PRICE, 0)
            except NeedsLease as need:
                await process.metering.cover(need)
                reservation = process.metering.reserve(key, amount, PRICE, 0, covered=True)
        except APIError as error:
            assert error.status == 402
            return
        self.open.append((p, reservation))

    @rule(p=st.integers(0, PROCESSES - 1), which=st.integers(0, 2), amount=st.integers(0, 8_000_000))
    def reserve(self, p: int, which: int, amount: int) -> None:
        self.run(self._reserve(p, which, amount))

    @rule(requests=st.lists(st.tuples(st.integers(0, PROCESSES - 1), st.integers(0, 2), st.integers(0, 8_000_000)),
                            min_size=2, max_size=6))
    def burst(self, requests: list[tuple[int, int, int]]) -> None:
        """Several requests at once, on every process: their lease grows race in the store."""
        async def together() -> None:
            await asyncio.gather(*(self._reserve(p, which, amount) for p, which, amount in requests))
        self.run(together())

    async def _settle(self, p: int, reservation: Reservation, prompt: int, completion: int) -> None:
        record = GenerationRecord(
            id=new_generation_id(), account_id=reservation.account.id, key_hash=reservation.key.hash, model="m",
            provider_name="p", provider_slug="p", upstream_model="m", prompt_nano_per_m=PRICE,
            completion_nano_per_m=PRICE, streamed=False, created_at=now_ms(), tokens_prompt=prompt,
            tokens_completion=completion)
        await self.processes[p].metering.finish(reservation, record)
        assert 0 <= record.total_cost_nano <= reservation.amount

    @rule(pick=st.integers(0, 10**6), prompt=TOKENS, completion=TOKENS)
    def settle(self, pick: int, prompt: int, completion: int) -> None:
        live = self.live()
        if not live:
            return
        p, reservation = live[pick % len(live)]
        self.open.remove((p, reservation))
        self.run(self._settle(p, reservation, prompt, completion))

    @rule(requests=st.lists(st.tuples(st.integers(0, PROCESSES - 1), st.integers(0, 2), st.integers(0, 8_000_000)),
                            min_size=1, max_size=4), settling=st.integers(1, 4), tokens=st.integers(0, 3_000))
    def settle_while_leasing(self, requests: list[tuple[int, int, int]], settling: int, tokens: int) -> None:
        """Settlements land while leases grow on the same processes (a charge applied during a grow's awaits)."""
        live = self.live()[:settling]
        for pair in live:
            self.open.remove(pair)

        async def together() -> None:
            await asyncio.gather(*(self._reserve(p, which, amount) for p, which, amount in requests),
                                 *(self._settle(p, r, tokens, tokens) for p, r in live))
        self.run(together())

    @rule(pick=st.integers(0, 10**6))
    def release(self, pick: int) -> None:
        live = self.live()
        if live:
            p, reservation = live[pick % len(live)]
            self.open.remove((p, reservation))
            self.processes[p].metering.release(reservation)

    @rule(p=st.integers(0, PROCESSES - 1))
    def beat(self, p: int) -> None:
        self.run(self.processes[p].leases.beat())

    @rule(p=st.integers(0, PROCESSES - 1))
    def follow(self, p: int) -> None:
        self.run(self.processes[p].follower.poll())

    @rule(p=st.integers(0, PROCESSES - 1))
    def crash(self, p: int) -> None:
        """Process ``p`` dies with its open reservations; its supervisor releases its leases; a new one starts."""
        dead = self.processes[p]
        dead.store.close()
        self.open = [(q, r) for q, r in self.open if q != p]
        survivor = self.processes[(p + 1) % PROCESSES]
        self.run(survivor.store.write([LeaseRepository.release(dead.holder)]))
        self.processes[p] = self.start(p)

    def live(self) -> list[tuple[int, Reservation]]:
        return [(p, r) for p, r in self.open if r.open]

    # ---- invariants -------------------------------------------------------------------------------------
    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.processes[0].store.fetch_now(sql, params)

    @invariant()
    def nothing_overspent(self) -> None:
        balance = self.rows("SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = ?",
                            (self.account_id,))[0][0]
        assert balance >= 0, "the account went below zero"
        outstanding = self.rows("SELECT COALESCE(SUM(granted_nano - spent_nano), 0) FROM credit_leases"
                                " WHERE key_hash IS NULL")[0][0]
        assert outstanding <= balance, "more is leased than the account has"
        now = now_ms()
        for (limit, _), key_hash in zip(LIMITS, self.key_hashes, strict=True):
            if limit is None:
                continue
            window = self.processes[0].book.keys[key_hash].window_start(now)
            charged = self.rows("SELECT COALESCE(SUM(-amount_nano), 0) FROM ledger WHERE key_hash = ? AND"
                                " kind = 'charge' AND created_at >= ?", (key_hash, window))[0][0]
            leased = self.rows("SELECT COALESCE(SUM(granted_nano - spent_nano), 0) FROM credit_leases"
                               " WHERE key_hash = ? AND window_start = ?", (key_hash, window))[0][0]
            assert charged + leased <= limit, "a key's charges and leases passed its limit"

    @invariant()
    def every_book_equals_its_leases(self) -> None:
        for process in self.processes:
            account = process.book.accounts[self.account_id]
            stored = self.rows("SELECT COALESCE(SUM(granted_nano - spent_nano), 0) FROM credit_leases"
                               " WHERE holder = ? AND key_hash IS NULL", (process.holder,))[0][0]
            assert account.leased == stored
            assert 0 <= account.reserved <= account.leased
            for key_hash in self.key_hashes:
                key = process.book.keys[key_hash]
                if key.limit is None:
                    continue
                stored = self.rows("SELECT COALESCE(SUM(granted_nano - spent_nano), 0) FROM credit_leases"
                                   " WHERE holder = ? AND key_hash = ? AND window_start = ?",
                                   (process.holder, key_hash, key.lease_window))[0][0]
                assert key.leased == stored
                assert 0 <= key.reserved <= key.leased


SharedMoney.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None, derandomize=True,
                                         suppress_health_check=[HealthCheck.too_slow])
test_lease_properties = SharedMoney.TestCase


def test_slices_shrink_to_the_last_nano_dollar() -> None:
    assert slice_size(0, 10**9, 2) == 0  # nothing needed, nothing leased
    assert slice_size(100, 99, 2) == 0  # not enough free: nothing leased (no hoarding)
    assert slice_size(100, 100, 2) == 100  # the last of it, exactly
    assert slice_size(100, 1_000_100, 2) == 100 + 1_000_100 // 4  # what is needed and a share of the rest
    free = 10**9
    for processes in (1, 2, 8):
        leased = 0
        while (grant := slice_size(1, free - leased, processes)) > 0:  # every process asks in turn
            leased += grant
            assert leased <= free
        assert leased == free  # the last nano-dollar is leased too


def test_processes_growing_at_once_never_lease_more_than_there_is() -> None:
    """Every process reads the same free credit, then all grow at once: the store's condition decides."""
    machine = SharedMoney()
    try:
        for _ in range(5):
            machine.burst([(p, 0, 8_000_000) for p in range(PROCESSES)] * 2)
            machine.nothing_overspent()
            machine.every_book_equals_its_leases()
        leased = sum(p.book.accounts[machine.account_id].leased or 0 for p in machine.processes)
        assert 0 < leased <= 20_000_000
        assert len(machine.open) >= 2  # some requests were served from the leases
    finally:
        machine.teardown()


def test_a_charge_applied_while_a_lease_grows_is_not_lost() -> None:
    """The grow reads back its new ``granted`` with an await; a settlement landing meanwhile must still count."""
    machine = SharedMoney()
    try:
        process = machine.processes[0]
        machine.reserve(0, 0, 1_000_000)
        (_, reservation), = machine.open
        machine.open.clear()
        read_granted = process.leases.rows.granted

        async def granted_with_a_settlement_meanwhile(lease_id: str) -> int:
            granted = await read_granted(lease_id)
            if reservation.open:
                await machine._settle(0, reservation, 100, 100)
            return granted

        process.leases.rows.granted = granted_with_a_settlement_meanwhile  # type: ignore[method-assign]
        machine.reserve(0, 0, process.book.accounts[machine.account_id].available + 1)  # must grow the lease
        assert not reservation.open
        machine.every_book_equals_its_leases()
    finally:
        machine.teardown()


def test_a_402_from_a_worker_says_what_the_account_has_left_not_what_this_worker_leased() -> None:
    machine = SharedMoney()
    try:
        machine.reserve(1, 0, 1_000_000)  # another process leases a slice and holds part of it
        process = machine.processes[0]
        key = process.book.keys[machine.key_hashes[0]]
        need = None
        try:
            process.metering.reserve(key, 30_000_000, PRICE, 0)
        except NeedsLease as short:
            need = short
        assert need is not None
        machine.run(process.metering.cover(need))
        try:
            process.metering.reserve(key, 30_000_000, PRICE, 0, covered=True)
        except APIError as error:
            assert error.status == 402
            other = machine.processes[1].book.accounts[machine.account_id]
            assert round(error.metadata["available_usd"] * 1e9) == 20_000_000 - (other.leased or 0)
        else:
            raise AssertionError("30,000,000 nano-USD of 20,000,000 was reserved")
    finally:
        machine.teardown()


def test_a_stalled_process_whose_leases_expired_holds_nothing_of_them() -> None:
    machine = SharedMoney()
    try:
        machine.reserve(0, 1, 1_000_000)  # account and key leases for process 0
        stalled = machine.processes[0]
        assert (stalled.book.accounts[machine.account_id].leased or 0) > 0
        machine.run(stalled.store.write([("UPDATE credit_leases SET expires_at = 0 WHERE holder = ?",
                                          (stalled.holder,))]))
        machine.beat(1)  # another process deletes them as expired: their credit is free for anyone
        assert machine.rows("SELECT COUNT(*) FROM credit_leases WHERE holder = ?", (stalled.holder,)) == [(0,)]
        machine.beat(0)
        assert stalled.book.accounts[machine.account_id].leased == 0
        assert stalled.book.keys[machine.key_hashes[1]].leased == 0
        for p in range(PROCESSES):  # what it had reserved is settled without minting credit for anyone
            machine.reserve(p, 0, 6_000_000)
        machine.nothing_overspent()
    finally:
        machine.teardown()
