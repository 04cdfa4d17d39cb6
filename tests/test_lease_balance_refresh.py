"""The balance a worker shows (ledger/leases.py ``_refresh_balance``) is a sum over the account's ledger rows,
read at the heartbeat: it costs more as the ledger grows, so a refresh that took T waits a multiple of T
before the next, and a cheap one runs at every beat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from routeway.ledger import leases as leases_module
from routeway.ledger.book import AccountState, Book
from routeway.ledger.leases import BALANCE_REFRESH_COST, Leases
from routeway.store.sqlite import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LedgerTaking:
    """A ledger whose balance query takes ``seconds`` of the clock and answers a new balance each time."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.seconds, self.reads = clock, seconds, 0

    async def balance(self, account_id: str) -> tuple[int, int]:
        self.reads += 1
        self.clock.now += self.seconds
        return 1_000 * self.reads, 10 * self.reads


@pytest.mark.parametrize("seconds", [0.5, 0.001])
def test_a_slow_balance_read_is_repeated_only_after_a_multiple_of_what_it_took(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    clock = Clock()
    monkeypatch.setattr(leases_module, "monotonic", clock)
    store = SQLiteStore(tmp_path / "routeway.sqlite3", group_member=True)
    store.open()
    try:
        leases = Leases(store, Book(), "p0-1", 2)
        ledger = LedgerTaking(clock, seconds)
        leases.ledger = ledger  # type: ignore[assignment]
        account = AccountState("acct", "a", 0)
        beats = 0
        for _ in range(12):  # one beat a second for 12 s
            asyncio.run(leases._refresh_balance(account))
            beats += 1
            clock.now += 1.0
        assert account.credits == 1_000 * ledger.reads and account.usage == 10 * ledger.reads
        if seconds * BALANCE_REFRESH_COST > 1:  # 0.5 s × 20: read at 0 s and again ~11.5 s later
            assert ledger.reads == 2
        else:  # 1 ms: every beat reads it
            assert ledger.reads == beats
    finally:
        store.close()
