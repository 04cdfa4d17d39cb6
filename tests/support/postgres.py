"""PostgreSQL for the tests: a throwaway database on the shared server (127.0.0.1:5432, user postgres, trust
auth) with one schema per test, and a server of the tests' own (initdb into a temporary folder, run as the
``postgres`` OS user on a port of its own) that a fault test may stop and start without disturbing anyone."""

from __future__ import annotations

import glob
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

SHARED_SERVER = os.environ.get("ROUTEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def available() -> bool:
    try:
        psycopg.connect(f"{SHARED_SERVER}/test", connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


class ThrowawayDatabase:
    """``CREATE DATABASE test_rw_<random>`` on first use, dropped by ``drop``; ``url_for(name)`` gives a URL
    whose tables live in a schema of that name (created on first use), so each test starts empty."""

    def __init__(self, server: str = SHARED_SERVER) -> None:
        self.server = server
        self.name: str | None = None

    @property
    def url(self) -> str:
        if self.name is None:
            name = "test_rw_" + secrets.token_hex(6)
            with psycopg.connect(f"{self.server}/test", autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}" LC_COLLATE "C" LC_CTYPE "C" TEMPLATE template0')
            self.name = name
        return f"{self.server}/{self.name}"

    def url_for(self, key: str) -> str:
        schema = "t_" + hashlib.sha256(key.encode()).hexdigest()[:16]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        return f"{self.url}?options={quote(f'-csearch_path={schema}')}"

    def drop(self) -> None:
        if self.name is not None:
            with psycopg.connect(f"{self.server}/test", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.name = None


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """What ``sql`` returns from the database at ``url``, read on a connection of its own."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _as_postgres(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, timeout=120,
                          check=True)


class OwnServer:
    """A PostgreSQL server of the test's own: ``stop`` and ``start`` it at will."""

    def __init__(self, port: int) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not binaries:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = Path(binaries[-1]).parent
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="routeway-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        _as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                     "--no-sync", "-E", "UTF8", "--locale=C")
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def start(self) -> None:
        _as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"), "-w",
                     "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        _as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data),
                               "status"], capture_output=True).returncode == 0

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def wait_until(condition: object, seconds: float = 30) -> bool:
    """Poll ``condition()`` until it is true (a bound on waiting, not an assertion about time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False
