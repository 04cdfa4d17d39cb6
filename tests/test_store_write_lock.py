"""The write lock of ``serve --workers N`` (store/writer.py's WriteLock): a worker's writer commits only while
it holds the group's lock, waits for it in the kernel, and commits what queued meanwhile in one group."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from pathlib import Path

from routeway.store.sqlite import SQLiteStore

INSERT = "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)"


def count(path: Path) -> int:
    return sqlite3.connect(path).execute("SELECT COUNT(*) FROM accounts").fetchone()[0]


def someone_waits_for(lock_path: Path) -> bool:
    """Whether a process is blocked in flock on this file (the kernel lists waiters in /proc/locks as ``->``)."""
    inode = os.stat(lock_path).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields and any(f.endswith(f":{inode}") for f in fields):
            return True
    return False


def test_a_worker_commits_only_holding_the_groups_lock_and_then_commits_what_queued_in_one_group(
        tmp_path: Path) -> None:
    path = tmp_path / "routeway.sqlite3"
    store = SQLiteStore(path, group_member=True)
    store.open()
    lock_path = tmp_path / "routeway.sqlite3.write-lock"
    other_worker = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other_worker, fcntl.LOCK_EX)  # another worker of the group is committing

    async def main() -> None:
        writes = [asyncio.create_task(store.write([(INSERT, (f"a{i}", "n", 0))])) for i in range(5)]
        await asyncio.sleep(0)  # every task submits its write before its first await
        deadline = time.monotonic() + 10
        while not someone_waits_for(lock_path):  # the writer has taken the first write and waits in flock
            assert time.monotonic() < deadline, "the writer never waited for the group's write lock"
            await asyncio.sleep(0.01)
        assert count(path) == 0 and store.commits == 0  # nothing is committed while another worker holds it
        fcntl.flock(other_worker, fcntl.LOCK_UN)
        await asyncio.wait_for(asyncio.gather(*writes), 10)

    try:
        asyncio.run(main())
        assert count(path) == 5
        assert store.commits == 1  # what queued while it waited went into the same group commit
    finally:
        os.close(other_worker)
        store.close()


def test_a_single_server_takes_no_group_lock(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "routeway.sqlite3")
    store.open()
    try:
        store.write_now([(INSERT, ("a", "n", 0))])
        assert not (tmp_path / "routeway.sqlite3.write-lock").exists()
    finally:
        store.close()
