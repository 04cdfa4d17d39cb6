"""The storage interface every backend implements."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

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
