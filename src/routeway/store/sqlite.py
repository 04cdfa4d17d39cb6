"""SQLite store: WAL, one writer thread doing group commits, readers on their own connections.

Writers hand a batch of statements to the writer thread and await a future; the thread takes
everything queued, runs each batch inside a savepoint (one bad batch fails alone), commits once and
wakes every waiter. One fsync serves many requests.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from prometheus_client import Histogram

from routeway.store.base import Op
from routeway.store.migrations import MIGRATIONS

log = logging.getLogger("routeway.store")

_MAX_BATCH = 512
_STOP = object()
# durability = "normal": how often the WAL's new commits are pushed to the disk in the background
WAL_FLUSH_SECONDS = 0.05
# 100 µs (a commit without fsync) to 1 s (a stalled disk)
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class StoreUnavailable(Exception):
    """This process cannot own the database: another one serves from it, or its folder is not ours."""


class SQLiteStore:
    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = Path(path)
        self._claim: int | None = None  # fd of the lock file while this process owns the database
        # full: each group commit is fsynced before its requests are answered (survives power loss);
        # normal: commits reach the OS at once (survive a crash of routeway) and the disk within
        # WAL_FLUSH_SECONDS (a power loss can take the last ~50 ms); less latency per request (bench/NOTES.md)
        self.synchronous = {"full": "FULL", "normal": "NORMAL"}[synchronous]
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._flusher: threading.Thread | None = None
        self._stopping = threading.Event()
        self._local = threading.local()
        self.commits = 0  # group commits done; batches per commit shows how well they group
        # Observed once per group commit in the writer thread; /metrics exports them (api/metrics.py).
        self.commit_seconds = Histogram("routeway_store_commit_seconds", "Duration of a group commit, fsync included",
                                        buckets=COMMIT_BUCKETS, registry=None)
        self.commit_batches = Histogram("routeway_store_commit_writes", "Writes (one per request that records"
                                        " anything) carried by one group commit", buckets=(1, 2, 4, 8, 16, 32, 64, 128,
                                                                                         256, 512), registry=None)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def claim(self) -> None:
        """Own the database for this process, or raise StoreUnavailable. Balances and reservations live in the
        serving process's memory: a second server on the same file would keep its own and could spend the
        same credits twice. flock is released by the kernel when the owner exits, however it exits."""
        if self._claim is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except PermissionError as exc:
            raise StoreUnavailable(f"cannot open {lock_path}: {exc.strerror}. Run routeway as the user that owns"
                                   f" {self.path.parent}, or give it a --data-dir of its own.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreUnavailable(
                f"another routeway (pid {owner}) is serving from {self.path}. Two servers on one data folder"
                f" would each keep their own balances and could spend the same credits twice: stop the other"
                f" one, or give this one its own --data-dir.") from None
        except OSError as exc:  # a filesystem without flock (some network mounts): say so, serve anyway
            log.warning("cannot lock %s (%s): make sure no other routeway serves from this data folder",
                        lock_path, exc)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._claim = fd

    def open(self) -> None:
        self.claim()
        conn = self._connect()
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        done = {row[0] for row in conn.execute("SELECT id FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.__name__ in done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            for statement in migration():
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (migration.__name__, int(time.time() * 1000)))
            conn.execute("COMMIT")
        self._writer_conn = conn
        self._stopping.clear()
        self._thread = threading.Thread(target=self._write_loop, name="routeway-sqlite-writer", daemon=True)
        self._thread.start()
        if self.synchronous == "NORMAL":
            self._flusher = threading.Thread(target=self._flush_wal, name="routeway-wal-flusher", daemon=True)
            self._flusher.start()

    def _flush_wal(self) -> None:
        """With synchronous=NORMAL no commit waits for the disk, so the WAL piles up dirty pages until a
        checkpoint must fsync them all at once, stalling the commit that runs it for milliseconds (bench
        step 25). Syncing whatever is new every 50 ms keeps that fsync small; commits still never wait."""
        wal_path = self.path.with_name(self.path.name + "-wal")
        fd: int | None = None
        flushed = self.commits
        try:
            while not self._stopping.wait(WAL_FLUSH_SECONDS):
                if self.commits == flushed:
                    continue  # nothing written since the last flush
                flushed = self.commits
                if fd is None:
                    try:
                        fd = os.open(wal_path, os.O_RDONLY)
                    except FileNotFoundError:
                        continue
                os.fdatasync(fd)
        finally:
            if fd is not None:
                os.close(fd)

    async def write(self, ops: Sequence[Op]) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((ops, future, loop))
        await future

    def write_now(self, ops: Sequence[Op]) -> None:
        """Blocking write for the CLI, through the same writer thread."""
        done = threading.Event()
        errors: list[BaseException] = []
        self._queue.put((ops, (done, errors), None))
        done.wait()
        if errors:
            raise errors[0]

    def _write_loop(self) -> None:
        conn = self._writer_conn
        while True:
            batch = [self._queue.get()]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            batch = [item for item in batch if item is not _STOP]
            if batch:
                started = time.perf_counter()
                outcomes = self._commit(conn, batch)
                self.commit_seconds.observe(time.perf_counter() - started)
                self.commit_batches.observe(len(batch))
                _wake_all(batch, outcomes)
            if stop:
                conn.close()
                return

    def _commit(self, conn: sqlite3.Connection, batch: list[Any]) -> list[BaseException | None]:
        """Fast path: the whole batch in one transaction, statements with the same SQL run together with
        executemany. If anything fails, roll back and replay batch by batch in savepoints, so one bad
        batch fails alone."""
        grouped: dict[str, list[Sequence[Any]]] = {}
        for ops, _, _ in batch:
            for sql, params in ops:
                grouped.setdefault(sql, []).append(params)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, rows in grouped.items():
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
            self.commits += 1
            return [None] * len(batch)
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        outcomes: list[BaseException | None] = []
        conn.execute("BEGIN IMMEDIATE")
        for ops, _, _ in batch:
            conn.execute("SAVEPOINT batch")
            try:
                for sql, params in ops:
                    conn.execute(sql, params)
                conn.execute("RELEASE batch")
                outcomes.append(None)
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK TO batch")
                conn.execute("RELEASE batch")
                outcomes.append(exc)
        try:
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            outcomes = [exc] * len(batch)
        return outcomes

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def fetch_now(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._reader().execute(sql, params).fetchall()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self.fetch_now, sql, params)

    def close(self) -> None:
        self._stopping.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._claim is not None:
            os.close(self._claim)  # releases the flock
            self._claim = None


def _wake_all(batch: list[Any], outcomes: list[BaseException | None]) -> None:
    """One hand-off per event loop for the whole group commit, not one per waiter: the writer thread
    holds the GIL for less time while the loop is serving requests."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], BaseException | None]]] = {}
    for (_, waiter, loop), outcome in zip(batch, outcomes):
        if loop is None:  # a blocking caller (write_now)
            done, errors = waiter
            if outcome is not None:
                errors.append(outcome)
            done.set()
        else:
            by_loop.setdefault(loop, []).append((waiter, outcome))
    for loop, waiters in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, waiters)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass


def _resolve(waiters: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for waiter, outcome in waiters:
        if waiter.done():
            continue
        if outcome is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(outcome)
