"""The store's writer thread without a server: a write that raises anything fails alone, and if the thread
stops anyway nobody waits forever."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from routeway.store.base import StoreUnwritable
from routeway.store.sqlite import SQLiteStore

INSERT = "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)"


def run(coro: Any, seconds: float = 10) -> Any:
    """Every wait is bounded: a writer that died shows as a TimeoutError here, not as a hung suite."""
    return asyncio.run(asyncio.wait_for(coro, seconds))


def count(path: Path) -> int:
    return sqlite3.connect(path).execute("SELECT COUNT(*) FROM accounts").fetchone()[0]


def test_a_write_raising_a_non_sqlite_error_fails_only_its_own_waiter(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    store.open()

    async def main() -> list[object]:
        writes = [store.write([(INSERT, (f"a{i}", "n", 0))]) for i in range(50)]
        writes.insert(10, store.write([(INSERT, ("huge", "n", 10**30))]))  # OverflowError while binding
        writes.insert(20, store.write(None))  # type: ignore[arg-type]  # TypeError: a malformed write
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        results = run(main())
        assert isinstance(results[10], OverflowError) and isinstance(results[20], TypeError)
        assert all(r is None for i, r in enumerate(results) if i not in (10, 20))
        run(store.write([(INSERT, ("after", "n", 0))]))  # the writer still serves
        assert store.writable
    finally:
        store.close()
    assert count(tmp_path / "db.sqlite3") == 51


class Fatal:
    """Binding it raises a BaseException the writer does not catch: a stand-in for a bug that stops the thread."""

    def __conform__(self, protocol: Any) -> Any:
        raise SystemExit("a bug in the writer")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_if_the_writer_stops_anyway_waiters_get_an_error_and_health_says_so(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    store.open()

    async def main() -> list[object]:
        writes = [store.write([(INSERT, ("fatal", "n", Fatal()))])]
        writes += [store.write([(INSERT, (f"a{i}", "n", 0))]) for i in range(20)]
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        results = run(main())
        assert results and all(isinstance(r, StoreUnwritable) for r in results), results
        with pytest.raises(StoreUnwritable, match="writer thread stopped"):
            run(store.write([(INSERT, ("later", "n", 0))]), 5)  # fails at once instead of waiting forever
        assert not store.writable and "writer thread stopped" in (store.problem or "")
    finally:
        store.close()


def test_the_wal_flusher_outlives_a_failing_fdatasync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import time

    from routeway.store import sqlite as sqlite_store

    calls: list[int] = []

    def failing_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sqlite_store.os, "fdatasync", failing_once)
    store = SQLiteStore(tmp_path / "db.sqlite3", "normal")
    store.open()
    try:
        for name in ("a", "b"):
            seen = len(calls)
            store.write_now([(INSERT, (name, "n", 0))])
            deadline = time.monotonic() + 2
            while len(calls) == seen and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(calls) > seen, "the WAL flusher stopped after a failed fdatasync"
    finally:
        store.close()
