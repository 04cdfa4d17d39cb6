"""Settlements the store could not write yet (a full disk): held, retried, applied once written.

A charge is applied to the book only after its ledger row is written, so the book always equals the
ledger. When the write fails because the store cannot write at all, the settlement waits here with its
reservation still held (shrunk to the charge) so nobody can spend that credit meanwhile, and it
is retried in the background until the store can write again; then it is applied, exactly once. A crash
while one waits loses only that in-memory charge: the ledger never had it, and the rebuilt book agrees.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from routeway.ledger.book import Book, Reservation
from routeway.store.base import Op, Store, StoreUnwritable

log = logging.getLogger("routeway.ledger")

RETRY_SECONDS = 0.25


@dataclass(slots=True)
class PendingSettlement:
    reservation: Reservation
    charge: int  # nano-USD, held in the reservation
    ops: list[Op]  # the generation row and its charge row, written together
    at: int  # ms: when the charge was made, the time its ledger row carries


class PendingSettlements:
    def __init__(self, store: Store, book: Book) -> None:
        self.store = store
        self.book = book
        self.waiting: list[PendingSettlement] = []

    def add(self, reservation: Reservation, charge: int, ops: list[Op], at: int) -> None:
        self.waiting.append(PendingSettlement(reservation, charge, ops, at))

    @property
    def held(self) -> int:
        return sum(p.charge for p in self.waiting)

    async def retry(self, force: bool = False) -> None:
        """Write every waiting settlement (one group commit), apply those that landed, keep the rest."""
        if not self.waiting or not (force or self.store.writable):
            return
        batch, self.waiting = self.waiting, []
        results = await asyncio.gather(*(self.store.write(p.ops) for p in batch), return_exceptions=True)
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, StoreUnwritable):
                self.waiting.append(pending)
                continue
            if result is not None:
                # this write can never land (a bug, not the disk): release its hold, as the ledger has nothing
                log.error("a held settlement of %d nano-USD cannot be written (%r); it is dropped", pending.charge,
                          result)
                self.book.apply(pending.reservation, 0, pending.at)
                continue
            self.book.apply(pending.reservation, pending.charge, pending.at)
        if not self.waiting:
            log.info("every held settlement is written; the book and the ledger agree again")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self.retry()
            except Exception:  # a bug here must not stop later retries
                log.exception("retrying held settlements failed")

    def report_lost(self) -> None:
        """At shutdown: what could not be written is lost with this process (README, Money)."""
        if self.waiting:
            log.warning("%d settlements (%d nano-USD of charges) could not be written before shutdown and are lost",
                        len(self.waiting), self.held)

