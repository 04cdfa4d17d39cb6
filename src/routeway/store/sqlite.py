"""SQLite store: WAL, one writer thread doing group commits (store/writer.py), readers on their own
connections, and the lock that makes one process the database's only owner."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from routeway.store.migrations import MIGRATIONS
from routeway.store.writer import SQLiteSession, WriteLock, Writer, WriterFront

log = logging.getLogger("routeway.store")

# sqlite3 binds int, float, str and bytearray directly; any other parameter (None, True/False: nine of a
# generation row's columns) is "adapted", and with no adapter registered each one costs a failed
# ``__adapt__`` lookup that formats an AttributeError (~2,500 instructions, bench step 37). Registered
# adapters store the same values (bool as 0/1, None as NULL) in one dict lookup and a C call each.
sqlite3.register_adapter(bool, int)
# {}.get(None) is None: an identity for None without a Python frame
sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))

# durability = "normal": how often the WAL's new commits are pushed to the disk in the background
WAL_FLUSH_SECONDS = 0.05


class StoreUnavailable(Exception):
    """This process cannot own the database: another one serves from it, or its folder is not ours."""


class SQLiteStore(WriterFront):
    def __init__(self, path: Path, synchronous: str = "full", group_member: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self._claim: int | None = None  # fd of the lock file while this process owns the database
        # A worker of ``serve --workers N``: its supervisor holds the claim for the whole group, and the
        # workers share the database through credit leases (ledger/leases.py).
        self.group_member = group_member
        # full: each group commit is fsynced before its requests are answered (survives power loss);
        # normal: commits reach the OS at once (survive a crash of routeway) and the disk within
        # WAL_FLUSH_SECONDS (a power loss can take the last ~50 ms); less latency per request (bench/NOTES.md)
        self.synchronous = {"full": "FULL", "normal": "NORMAL"}[synchronous]
        self._flusher: threading.Thread | None = None
        self._stopping = threading.Event()
        self._local = threading.local()

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
        if self._claim is not None or self.group_member:
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
        self._stopping.clear()
        # The workers of one group take turns at SQLite's write lock through this one (store/writer.py).
        write_lock = WriteLock(self.path.with_name(self.path.name + ".write-lock")) if self.group_member else None
        self._writer = Writer(SQLiteSession(conn), self.commit_seconds, self.commit_batches, write_lock=write_lock)
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
                try:
                    os.fdatasync(fd)
                except OSError:  # a failing disk: the writer's own commits report it; keep flushing later ones
                    flushed = -1
        finally:
            if fd is not None:
                os.close(fd)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def fetch_now(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._reader().execute(sql, params).fetchall()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self.fetch_now, sql, params)

    def schema(self) -> dict[str, Any]:
        from routeway.store.schema import describe_sqlite

        return describe_sqlite(self.fetch_now)

    def close(self) -> None:
        self._stopping.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        if self._claim is not None:
            os.close(self._claim)  # releases the flock
            self._claim = None

