"""Property tests for money: any sequence of grants, reservations, settlements with any usage an upstream
may report, releases and crashes keeps the ledger and the book equal, no account below zero, no key past its
limit, and no charge above its reservation.

The store is the real SQLite store (writer thread, group commit) in a temporary folder; a "crash" drops the
in-memory book with its open reservations and rebuilds it from the ledger, as a restart does.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from routeway.errors import APIError
from routeway.ledger.accounts import Accounts, now_ms
from routeway.ledger.book import Book, Reservation
from routeway.ledger.ids import new_generation_id
from routeway.ledger.metering import GenerationRecord, Metering
from routeway.store.sqlite import SQLiteStore

PRICE = 2_000_000_000  # nano-USD per 1M tokens ($2)
# what an upstream may claim: nothing, tiny, normal, absurd, negative
TOKENS = st.one_of(st.integers(0, 5_000), st.integers(-10**12, 10**15), st.sampled_from([0, -1, 2**62, -2**62]))


class Money(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.loop = asyncio.new_event_loop()
        self.store = SQLiteStore(Path(self.folder.name) / "routeway.sqlite3")
        self.store.open()
        self.book = Book()
        self.accounts = Accounts(self.store, self.book)
        self.metering = Metering(self.store, self.book)
        account = self.run(self.accounts.create_account("prop"))
        self.account_id = account.id
        self.key_hashes = []
        for limit, reset in ((None, None), (3_000_000, "daily"), (50_000_000, None)):
            _, key = self.run(self.accounts.create_key(account, name="k", is_management=False, limit=limit,
                                                        limit_reset=reset))
            self.key_hashes.append(key.hash)

    def run(self, work):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        self.store.close()
        self.loop.close()
        self.folder.cleanup()

    @rule(amount=st.integers(1, 200_000_000))
    def grant(self, amount: int) -> None:
        self.run(self.accounts.grant(self.book.accounts[self.account_id], amount, "grant"))

    @rule(amount=st.integers(1, 200_000_000))
    def take_back(self, amount: int) -> None:
        with contextlib.suppress(ValueError):  # more than is available: refused, nothing written
            self.run(self.accounts.grant(self.book.accounts[self.account_id], -amount, "take back"))

    @rule(target=reservations, which=st.integers(0, 2), amount=st.integers(0, 40_000_000))
    def reserve(self, which: int, amount: int) -> Reservation | None:
        key = self.book.keys[self.key_hashes[which]]
        try:
            return self.metering.reserve(key, amount, PRICE, 0)
        except APIError as error:
            assert error.status == 402
            return None

    @rule(reservation=consumes(reservations), prompt=TOKENS, completion=TOKENS)
    def settle(self, reservation: Reservation | None, prompt: int, completion: int) -> None:
        if not self.alive(reservation):
            return
        before = reservation.account.usage
        record = GenerationRecord(
            id=new_generation_id(), account_id=reservation.account.id, key_hash=reservation.key.hash, model="m",
            provider_name="p", provider_slug="p", upstream_model="m", prompt_nano_per_m=PRICE,
            completion_nano_per_m=PRICE, streamed=False, created_at=now_ms(), tokens_prompt=prompt,
            tokens_completion=completion)
        self.run(self.metering.finish(reservation, record))
        charged = reservation.account.usage - before
        assert 0 <= charged <= reservation.amount, (charged, reservation.amount)
        assert record.total_cost_nano == charged

    @rule(reservation=consumes(reservations))
    def release(self, reservation: Reservation | None) -> None:
        if self.alive(reservation):
            self.metering.release(reservation)  # type: ignore[arg-type]

    def alive(self, reservation: Reservation | None) -> bool:
        """Open, and made by this book: a crash ends the requests whose reservations died with it."""
        return (reservation is not None and reservation.open
                and reservation.account is self.book.accounts.get(reservation.account.id))

    @rule()
    def crash(self) -> None:
        """The process dies: open reservations vanish with the book, which is rebuilt from the ledger."""
        self.store.close()
        self.store = SQLiteStore(self.store.path)
        self.store.open()
        self.book = Book()
        self.accounts = Accounts(self.store, self.book)
        self.metering = Metering(self.store, self.book)
        self.accounts.load()

    @invariant()
    def book_equals_ledger(self) -> None:
        account = self.book.accounts[self.account_id]
        credits, usage = self.store.fetch_now(
            "SELECT COALESCE(SUM(CASE WHEN amount_nano > 0 THEN amount_nano END), 0),"
            " COALESCE(SUM(CASE WHEN amount_nano < 0 THEN -amount_nano END), 0) FROM ledger"
            " WHERE account_id = ?", (self.account_id,))[0]
        # in memory as after a restart: credits are the positive rows, usage the negative ones (take-backs too)
        assert (account.credits, account.usage) == (credits, usage)
        assert account.usage <= account.credits, "the account went below zero"
        assert account.reserved >= 0
        positive = self.store.fetch_now("SELECT COUNT(*) FROM ledger WHERE kind = 'charge' AND amount_nano >= 0")
        assert positive[0][0] == 0, "a charge row credited the account"

    @invariant()
    def keys_within_limits(self) -> None:
        now = now_ms()
        for key_hash in self.key_hashes:
            key = self.book.keys[key_hash]
            if key.limit is not None:
                assert key.limit_usage(now) <= key.limit, "a key went past its limit"
            assert key.reserved >= 0


Money.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None, derandomize=True,
                                   suppress_health_check=[HealthCheck.too_slow])
test_money_properties = Money.TestCase
