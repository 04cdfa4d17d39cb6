"""The storage interface every backend implements. SQL text lives only in the repositories beside it
(``accounts.py``, ``ledger.py``, ``generations.py``, ``endpoint_minutes.py``, ``usage.py``), portable
between SQLite and PostgreSQL; callers ask them named questions and hand their ops to ``write``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from prometheus_client import Histogram

Op = tuple[str, Sequence[Any]]  # one SQL statement with ``?`` placeholders and its parameters


class StoreUnwritable(Exception):
    """The database cannot be written at all (disk full, I/O error, read-only): not this write's fault.
    ``problem`` says what is wrong, e.g. "database or disk is full"."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"cannot write: {problem}")
        self.problem = problem


class Store(Protocol):
    @property
    def writable(self) -> bool:
        """False from a write that failed for the whole store until one succeeds again (an attribute read)."""

    @property
    def problem(self) -> str | None:
        """What is wrong while the store is not writable."""

    @property
    def commit_seconds(self) -> Histogram:
        """Duration of each group commit (``/metrics``)."""

    @property
    def commit_batches(self) -> Histogram:
        """Writes carried by each group commit (``/metrics``)."""

    def claim(self) -> None:
        """Before listening: own the database for this process, or raise an error saying who does (SQLite);
        check the shared database can be reached (PostgreSQL, which many processes use at once)."""

    def open(self) -> None:
        """Create the database if needed and apply every pending migration."""

    async def write(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` atomically; returns once they are durable (group commit with other writers).
        Raises ``StoreUnwritable`` when nothing can be written; any other exception is this write's own."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query off the event loop."""

    def fetch_now(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Blocking read, for start-up and the CLI only."""

    def close(self) -> None: ...
