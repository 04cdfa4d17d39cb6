"""The storage interface every backend implements."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

Op = tuple[str, Sequence[Any]]  # one SQL statement with ``?`` placeholders and its parameters


class Store(Protocol):
    def open(self) -> None:
        """Create the database if needed and apply every pending migration."""

    async def write(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` atomically; returns once they are durable (group commit with other writers)."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query off the event loop."""

    def fetch_now(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Blocking read, for start-up and the CLI only."""

    def close(self) -> None: ...
