"""The writer thread: the one connection that writes, in group commits, and the store's health.

Writers hand a batch of statements to the thread and wait; the thread takes everything queued, runs it in
one transaction (replaying batch by batch in savepoints if anything fails, so one bad batch fails alone),
commits once and wakes every waiter. One fsync serves many requests.

It never dies of a write: any exception fails that write's waiters and the thread goes on. A failure that
is the database's, not the write's (disk full, I/O error, the server gone), marks the store not writable;
while so, the thread probes every PROBE_SECONDS and marks it writable again when a probe lands. If the
thread stops anyway (a bug), every waiter and every later write gets ``StoreUnwritable``: none hangs.

The database itself is behind ``Session`` (one per backend: ``SQLiteSession`` here, ``PostgresSession`` in
postgres.py), so both backends share these group-commit semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import Histogram

from routeway.store.base import Op, StoreUnwritable

log = logging.getLogger("routeway.store")

_MAX_BATCH = 512
_STOP = object()
PROBE_SECONDS = 0.5  # while the store cannot write: how often a probe write checks whether it can again
# Primary SQLite result codes that mean no write can succeed, whatever it is (not a bad statement or row).
_STORE_FAILURES = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
                   sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_BUSY,
                   sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM}
# A real write that leaves nothing behind: the page it dirties must reach the WAL, so it needs disk space.
_PROBE = ("INSERT OR REPLACE INTO schema_migrations (id, applied_at) VALUES ('store-probe', 0)",
          "DELETE FROM schema_migrations WHERE id = 'store-probe'")


BUSY_WAIT_SECONDS = 30.0  # how long a commit waits for other processes' commits (``serve --workers N``)
_BUSY_SPIN = 0.0001


def begin(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting while another process (a worker of the same group) holds the write lock. The
    connection's own busy handler is off: it sleeps 1, 2, 5 … 100 ms between tries, so a lock held for a
    fraction of a millisecond would cost a whole sleep; this polls every 0.1 ms instead."""
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(_BUSY_SPIN)


def store_failure(exc: BaseException) -> str | None:
    """What is wrong with the database, when ``exc`` says no write can succeed; None when only this write failed."""
    if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF in _STORE_FAILURES:
        return str(exc)
    return None


class WriteLock:
    """The write lock of the processes sharing one SQLite database (``serve --workers N``), held around
    each group commit: a worker that finds it taken sleeps in the kernel until it is free, instead of
    polling ``BEGIN IMMEDIATE`` (one fcntl and one sleep per try, bench/NOTES.md step 36), and its group
    commit then carries everything that queued meanwhile. flock is released by the kernel when its holder
    exits, however it exits. On a filesystem without flock it turns itself off (with a warning) and
    ``begin`` polls as before. It does not time out: its holder is another worker's commit, which ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> WriteLock:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            except OSError as exc:
                log.warning("cannot lock %s (%s): the workers poll for SQLite's write lock instead", self.path, exc)
                self.close()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Session(Protocol):
    """The writer thread's connection to one database. Statements come with the backend's own placeholders
    already (the store translates); transactions and savepoints are named by the session."""

    @property
    def idle_check_seconds(self) -> float | None:
        """While writable and idle: how often to check the database is still there (None: never; a file is)."""

    def begin(self) -> None: ...

    def execute(self, sql: str, params: Sequence[Any]) -> None: ...

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None: ...

    def savepoint(self) -> None: ...

    def rollback_to_savepoint(self) -> None: ...

    def release_savepoint(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None:
        """Undo the open transaction if there is one; never raises."""

    def failure(self, exc: BaseException) -> str | None:
        """What is wrong with the database when ``exc`` says no write can succeed; None when it is the write's."""

    def probe(self) -> None:
        """A tiny real write (reconnecting first if needed); raises if the database still cannot write."""

    def close(self) -> None: ...


class SQLiteSession:
    idle_check_seconds: float | None = None

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("PRAGMA busy_timeout = 0")  # ``begin`` waits for the lock itself

    def begin(self) -> None:
        begin(self.conn)

    def execute(self, sql: str, params: Sequence[Any]) -> None:
        self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def savepoint(self) -> None:
        self.conn.execute("SAVEPOINT batch")

    def rollback_to_savepoint(self) -> None:
        self.conn.execute("ROLLBACK TO batch")

    def release_savepoint(self) -> None:
        self.conn.execute("RELEASE batch")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        _rollback(self.conn)

    def failure(self, exc: BaseException) -> str | None:
        return store_failure(exc)

    def probe(self) -> None:
        try:
            begin(self.conn)
            for sql in _PROBE:
                self.conn.execute(sql)
            self.conn.execute("COMMIT")
        except Exception:
            _rollback(self.conn)
            raise

    def close(self) -> None:
        self.conn.close()


class Writer:
    def __init__(self, session: Session, commit_seconds: Histogram, commit_batches: Histogram,
                 name: str = "routeway-sqlite-writer", write_lock: WriteLock | None = None) -> None:
        self.session = session
        self.write_lock = write_lock  # held around each group commit when processes share the database
        self.commit_seconds = commit_seconds
        self.commit_batches = commit_batches
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.commits = 0  # group commits done; batches per commit shows how well they group
        self.writable = True
        self.problem: str | None = None
        self.stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, ops: Sequence[Op], waiter: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self.queue.put((ops, waiter, loop))
        if self.stopped:  # checked after the put: the thread cannot drain this item any more, so we do
            self._fail_queued()

    def stop(self) -> None:
        self.queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        clean = False
        batch: list[Any] = []
        try:
            while True:
                try:
                    first = self.queue.get(timeout=self.session.idle_check_seconds if self.writable
                                           else PROBE_SECONDS)
                except queue.Empty:
                    with self._exclusive():
                        self._probe()  # idle: notice a database that went away before a paid request does
                    continue
                batch = [first]
                # Drained only once the group's lock is ours: what queued while another worker committed
                # joins this group commit instead of waiting for one more (bench/NOTES.md step 36).
                with self._exclusive():
                    while len(batch) < _MAX_BATCH:
                        try:
                            batch.append(self.queue.get_nowait())
                        except queue.Empty:
                            break
                    stop = any(item is _STOP for item in batch)
                    batch = [item for item in batch if item is not _STOP]
                    outcomes = self._commit_timed(batch) if batch else []
                if batch:
                    self._finish(batch, outcomes)
                    batch = []
                if stop:
                    clean = True
                    return
        finally:
            self.stopped = True
            if not clean:
                log.critical("the store's writer thread stopped; every write fails until routeway restarts")
                self._mark(False, "the writer thread stopped; restart routeway")
                _wake_all(batch, [StoreUnwritable(self.problem or "")] * len(batch))  # the group it was on
            self._fail_queued()
            self.session.close()
            if self.write_lock is not None:
                self.write_lock.close()

    def _exclusive(self) -> contextlib.AbstractContextManager[object]:
        return self.write_lock if self.write_lock is not None else contextlib.nullcontext()

    def _commit_timed(self, batch: list[Any]) -> list[BaseException | None]:
        started = time.perf_counter()
        try:
            outcomes = self._commit(batch)
        except Exception as exc:  # a fault in the commit path itself: this group fails, the thread goes on
            log.error("a group commit failed unexpectedly: %r", exc)
            outcomes = [exc] * len(batch)
        self.commit_seconds.observe(time.perf_counter() - started)
        self.commit_batches.observe(len(batch))
        return outcomes

    def _finish(self, batch: list[Any], outcomes: list[BaseException | None]) -> None:
        failed = next((o for o in outcomes if isinstance(o, StoreUnwritable)), None)
        if failed is not None:
            self._mark(False, failed.problem)
        elif any(o is None for o in outcomes):
            self._mark(True)
        _wake_all(batch, outcomes)

    def _commit(self, batch: list[Any]) -> list[BaseException | None]:
        """Fast path: the whole batch in one transaction, statements with the same SQL run together with
        executemany. If anything fails, roll back and replay batch by batch in savepoints."""
        session = self.session
        try:
            grouped: dict[str, list[Sequence[Any]]] = {}
            for ops, _, _ in batch:
                for sql, params in ops:
                    grouped.setdefault(sql, []).append(params)
            session.begin()
            for sql, rows in grouped.items():
                session.executemany(sql, rows)
            session.commit()
            self.commits += 1
            return [None] * len(batch)
        except Exception as exc:  # any exception: a huge int raises OverflowError, not sqlite3.Error
            session.rollback()
            problem = session.failure(exc)
            if problem:
                return [StoreUnwritable(problem)] * len(batch)
        outcomes: list[BaseException | None] = []
        try:
            session.begin()
            for ops, _, _ in batch:
                session.savepoint()
                try:
                    for sql, params in ops:
                        session.execute(sql, params)
                    outcomes.append(None)
                except Exception as exc:
                    if session.failure(exc):
                        raise
                    session.rollback_to_savepoint()
                    outcomes.append(exc)
                session.release_savepoint()
            session.commit()
            self.commits += 1
            return outcomes
        except Exception as exc:
            session.rollback()
            problem = session.failure(exc)
            return [StoreUnwritable(problem) if problem else exc] * len(batch)

    def _probe(self) -> None:
        try:
            self.session.probe()
        except Exception as exc:
            self.session.rollback()
            self._mark(False, self.session.failure(exc) or str(exc))
            return
        self._mark(True)

    def _mark(self, writable: bool, problem: str | None = None) -> None:
        """One warning when the store stops being writable and one when it can write again, not one per write."""
        if writable and not self.writable:
            log.warning("the store can write again: accepting paid requests and changes")
        elif not writable and self.writable:
            log.warning("the store cannot write (%s): refusing paid requests, grants and key changes with 503"
                        " until it can; retrying every %g s", problem, PROBE_SECONDS)
        self.problem = None if writable else problem
        self.writable = writable

    def _fail_queued(self) -> None:
        failure = StoreUnwritable(self.problem or "the store is closed")
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                _wake_all([item], [failure])


def _rollback(conn: sqlite3.Connection) -> None:
    """SQLite may already have rolled back by itself (SQLITE_FULL does): then there is nothing to undo."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _wake_all(batch: list[Any], outcomes: Sequence[BaseException | None]) -> None:
    """One hand-off per event loop for the whole group commit, not one per waiter: the writer thread
    holds the GIL for less time while the loop is serving requests."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], BaseException | None]]] = {}
    for (_, waiter, loop), outcome in zip(batch, outcomes, strict=True):
        if loop is None:  # a blocking caller (write_now)
            done, errors = waiter
            if outcome is not None:
                errors.append(outcome)
            done.set()
        else:
            by_loop.setdefault(loop, []).append((waiter, outcome))
    for loop, waiters in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, waiters)


def _resolve(waiters: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for waiter, outcome in waiters:
        if waiter.done():
            continue
        if outcome is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(outcome)


# 100 µs (a commit without fsync) to 1 s (a stalled disk)
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class WriterFront:
    """The side of a store (SQLite's or PostgreSQL's) that its Writer thread serves: the group-commit
    histograms, health read straight off the writer, and one write handed to the thread and awaited."""

    def __init__(self) -> None:
        self._writer: Writer | None = None
        # Observed once per group commit in the writer thread; /metrics exports them (api/metrics.py).
        self.commit_seconds = Histogram("routeway_store_commit_seconds", "Duration of a group commit, fsync included",
                                        buckets=COMMIT_BUCKETS, registry=None)
        self.commit_batches = Histogram("routeway_store_commit_writes", "Writes (one per request that records"
                                        " anything) carried by one group commit", buckets=(1, 2, 4, 8, 16, 32, 64, 128,
                                                                                         256, 512), registry=None)

    # ---- health: cheap attribute reads, for the request path and /health ---------------------------
    @property
    def writable(self) -> bool:
        return self._writer is not None and self._writer.writable and not self._writer.stopped

    @property
    def problem(self) -> str | None:
        if self._writer is None:
            return "the store is not open"
        return self._writer.problem

    @property
    def commits(self) -> int:
        return self._writer.commits if self._writer is not None else 0

    def _open_writer(self) -> Writer:
        if self._writer is None:
            raise StoreUnwritable("the store is not open")
        return self._writer

    async def write(self, ops: Sequence[Op]) -> None:
        writer = self._open_writer()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        writer.submit(ops, future, loop)
        await future

    def write_now(self, ops: Sequence[Op]) -> None:
        """Blocking write for the CLI, through the same writer thread."""
        writer = self._open_writer()
        done = threading.Event()
        errors: list[BaseException] = []
        writer.submit(ops, (done, errors), None)
        done.wait()
        if errors:
            raise errors[0]
