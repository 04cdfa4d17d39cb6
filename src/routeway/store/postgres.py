"""PostgreSQL store (psycopg 3): the same repositories' SQL, the same group commits (store/writer.py, one
writer connection per process), readers on connections of their own. Several processes and hosts share
one database: nothing here claims it, and migrations serialize on an advisory lock.

The repositories write portable SQL with ``?`` placeholders; ``translate`` is the one place that turns
it into PostgreSQL's (``%s``), and ``translate_ddl`` the one place that maps the migrations' column types.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo, errors as pg_errors
from psycopg.adapt import Dumper

from routeway.store.base import Op, StoreUnwritable
from routeway.store.migrations import MIGRATIONS
from routeway.store.sqlite import StoreUnavailable
from routeway.store.writer import Writer, WriterFront

log = logging.getLogger("routeway.store")

IDLE_CHECK_SECONDS = 1.0  # while idle: how often the writer checks the server is still there
MIGRATION_LOCK = 0x726F757465776179  # pg_advisory_xact_lock key ("routeway"): one process migrates at a time
# Fail fast when the server is unreachable: a paid request must get its 503 in seconds, not hang on TCP.
CONNECT_DEFAULTS = {"connect_timeout": "3", "keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "2",
                    "keepalives_count": "2", "tcp_user_timeout": "5000", "application_name": "routeway"}
# SQLite's INTEGER is 64-bit and its REAL a double: PostgreSQL's INTEGER and REAL are half that.
_DDL_TYPES = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION"}
_DDL_TYPE = re.compile(r"\b(INTEGER|REAL)\b")


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """Portable SQL (``?`` placeholders) to psycopg's (``%s``; a literal ``%`` doubled). The repositories'
    SQL never holds a ``?`` inside a string literal."""
    return sql.replace("%", "%%").replace("?", "%s")


def translate_ddl(statement: str) -> str:
    return _DDL_TYPE.sub(lambda m: _DDL_TYPES[m.group(1)], statement)


class _BoolAsInteger(Dumper):
    """Flags are INTEGER 0/1 columns on both backends (SQLite has no boolean): Python's bool goes in as one."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    params = pg_conninfo.conninfo_to_dict(url)
    for name, value in CONNECT_DEFAULTS.items():
        params.setdefault(name, value)
    conn = psycopg.connect(pg_conninfo.make_conninfo("", **params), autocommit=True)
    conn.adapters.register_dumper(bool, _BoolAsInteger)
    return conn


def describe_url(url: str) -> str:
    """The database a URL names, without its password (for the console and logs)."""
    try:
        params = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql (unparsable URL)"
    return (f"postgresql://{params.get('user', '')}{'@' if params.get('user') else ''}{params.get('host', '')}"
            f"{':' + str(params['port']) if params.get('port') else ''}/{params.get('dbname', '')}")


RACE_RETRIES = 20  # a write that lost a race is replayed; each replay waits a little longer (up to ~0.2 s)


def lost_a_race(exc: BaseException) -> bool:
    """True when a write failed only because another transaction was at the same rows at the same instant,
    so replaying it unchanged will succeed: two change-log rows given the same next id by two processes
    (store/changes.py), a deadlock or a serialization failure. Never true of a write's own fault."""
    if isinstance(exc, pg_errors.TransactionRollback):
        return True
    return isinstance(exc, pg_errors.UniqueViolation) and exc.diag.table_name == "store_changes"


def store_failure(exc: BaseException) -> str | None:
    """What is wrong with the server when ``exc`` says no write can succeed (gone, unreachable, out of disk,
    read-only); None when the write itself is at fault (a constraint, a value out of range, a deadlock)."""
    if isinstance(exc, pg_errors.TransactionRollback):
        return None
    if isinstance(exc, psycopg.OperationalError | pg_errors.ReadOnlySqlTransaction):
        first = str(exc).strip().splitlines()
        return f"PostgreSQL: {first[0] if first else type(exc).__name__}"
    return None


class PostgresSession:
    """The writer thread's connection (store/writer.py), reconnecting when the server comes back."""

    idle_check_seconds: float | None = IDLE_CHECK_SECONDS

    def __init__(self, url: str, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self.url = url
        self.conn: psycopg.Connection[tuple[Any, ...]] | None = conn

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            self.conn = connect(self.url)
        return self.conn

    def begin(self) -> None:
        self._live().execute("BEGIN")

    def execute(self, sql: str, params: Sequence[Any]) -> None:
        self._live().execute(translate(sql), params)

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        self._live().cursor().executemany(translate(sql), rows)

    def savepoint(self) -> None:
        self._live().execute("SAVEPOINT batch")

    def rollback_to_savepoint(self) -> None:
        self._live().execute("ROLLBACK TO SAVEPOINT batch")

    def release_savepoint(self) -> None:
        self._live().execute("RELEASE SAVEPOINT batch")

    def commit(self) -> None:
        self._live().execute("COMMIT")

    def rollback(self) -> None:
        conn = self.conn
        if conn is None or conn.closed or conn.broken:
            return  # a lost connection's transaction is gone with it
        try:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()

    def failure(self, exc: BaseException) -> str | None:
        return store_failure(exc)

    def probe(self) -> None:
        """A round trip that also refuses a server that is read-only (a standby after a failover)."""
        [(read_only,)] = self._live().execute("SELECT pg_is_in_recovery()").fetchall()
        if read_only:
            raise pg_errors.ReadOnlySqlTransaction("the server is a read-only standby")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class PostgresStore(WriterFront):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._local = threading.local()
        self._readers: list[psycopg.Connection[tuple[Any, ...]]] = []
        self._readers_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({describe_url(self.url)})"

    def claim(self) -> None:
        """Nothing to claim (any number of processes share one database); only check, before listening,
        that it can be reached, so a wrong URL is one clear line rather than a failed start-up."""
        try:
            connect(self.url).close()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot reach {describe_url(self.url)}: {str(exc).strip()}") from None

    def open(self) -> None:
        try:
            conn = connect(self.url)
        except psycopg.Error as exc:
            raise StoreUnwritable(f"cannot connect to {describe_url(self.url)}: {exc}") from None
        migrate(conn)
        self._writer = Writer(PostgresSession(self.url, conn), self.commit_seconds, self.commit_batches,
                              name="routeway-postgres-writer")

    async def write(self, ops: Sequence[Op]) -> None:
        """One write, replayed while it loses a race with another process (``lost_a_race``): a write is
        atomic (its own savepoint in the group commit), so a replay never applies part of it twice."""
        for attempt in range(RACE_RETRIES + 1):
            try:
                await super().write(ops)
                return
            except psycopg.Error as exc:
                if attempt == RACE_RETRIES or not lost_a_race(exc):
                    raise
            await asyncio.sleep(_backoff(attempt))

    def write_now(self, ops: Sequence[Op]) -> None:
        """Blocking write for the CLI, through the same writer thread (replayed as ``write`` is)."""
        for attempt in range(RACE_RETRIES + 1):
            try:
                super().write_now(ops)
                return
            except psycopg.Error as exc:
                if attempt == RACE_RETRIES or not lost_a_race(exc):
                    raise
            time.sleep(_backoff(attempt))

    def _reader(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn: psycopg.Connection[tuple[Any, ...]] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
                with self._readers_lock:
                    if conn in self._readers:
                        self._readers.remove(conn)
            self._local.conn = None
            try:
                conn = connect(self.url)
            except psycopg.OperationalError as exc:
                raise StoreUnwritable(store_failure(exc) or str(exc)) from None
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def fetch_now(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read on this thread's connection; one retry on a fresh connection if the server restarted since."""
        for attempt in (1, 2):
            conn = self._reader()
            try:
                return conn.execute(translate(sql), params).fetchall()
            except psycopg.OperationalError as exc:
                if attempt == 2 or not conn.broken:
                    raise StoreUnwritable(store_failure(exc) or str(exc)) from None
        raise AssertionError("unreachable")

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self.fetch_now, sql, params)

    def schema(self) -> dict[str, Any]:
        from routeway.store.schema import describe_postgres

        return describe_postgres(self.fetch_now)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()


def _backoff(attempt: int) -> float:
    """Jittered, so two processes that collided do not collide again in lockstep."""
    return random.uniform(0, min(0.2, 0.005 * 2 ** attempt))


def migrate(conn: psycopg.Connection[tuple[Any, ...]]) -> list[str]:
    """Apply every pending migration in one transaction (PostgreSQL's DDL is transactional), under an
    advisory lock so replicas starting together migrate once. Returns the ids applied now."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        done = {row[0] for row in conn.execute("SELECT id FROM schema_migrations").fetchall()}
        for migration in MIGRATIONS:
            if migration.__name__ in done:
                continue
            for statement in migration():
                conn.execute(translate_ddl(statement))
            conn.execute("INSERT INTO schema_migrations (id, applied_at) VALUES (%s, %s)",
                         (migration.__name__, int(time.time() * 1000)))
            applied.append(migration.__name__)
    return applied
