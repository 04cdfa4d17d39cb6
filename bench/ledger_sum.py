"""What a lease grow's free-credit check costs as an account's ledger grows (bench/NOTES.md step 35).

Fills one account's ledger with N rows (a few grants, the rest charges spread over 10 keys, one of them
limited without reset so its free check sums its whole history), then times the reads a grow makes
(``LeaseRepository.account_free`` and ``key_free``) and the follower's balance refresh
(``LedgerRepository.balance``), median of R runs each, on SQLite (a temporary file) or PostgreSQL (--url).

    PYTHONPATH=src .venv/bin/python bench/ledger_sum.py --rows 100000
    PYTHONPATH=src .venv/bin/python bench/ledger_sum.py --rows 100000 --url postgresql://postgres@127.0.0.1/bench_x
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from routeway.store.accounts import AccountRepository, AccountRow, KeyRow
from routeway.store.leases import LeaseRepository
from routeway.store.ledger import LedgerEntry, LedgerRepository


def fill(store: Any, rows: int) -> tuple[str, str]:
    account = "acct-bench"
    keys = [f"{i:064x}" for i in range(10)]
    now = int(time.time() * 1000)
    ops = [AccountRepository.insert(AccountRow(account, "bench", now))]
    for i, key in enumerate(keys):
        ops.append(AccountRepository.insert_key(KeyRow(key, account, f"k{i}", "sk-...", False,
                                                       10**15 if i == 0 else None, None, False, None, False, False,
                                                       now, None)))
    store.write_now(ops)
    batch: list[Any] = []
    for i in range(rows):
        if i % 1000 == 0:
            entry = LedgerEntry(f"grant-{i}", account, None, "grant", 10**9, None, "", now - rows + i)
        else:
            entry = LedgerEntry(f"charge-{i}", account, keys[i % len(keys)], "charge", -1000, f"gen-{i}", "",
                                now - rows + i)
        batch.append(LedgerRepository.insert(entry))
        if len(batch) == 5000:
            store.write_now(batch)
            batch = []
    if batch:
        store.write_now(batch)
    return account, keys[0]


async def timed(call: Any, runs: int) -> float:
    await call()  # warm the cache: a grow reads a hot account
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def measure(store: Any, account: str, key: str, runs: int) -> dict[str, float]:
    leases, ledger = LeaseRepository(store), LedgerRepository(store)
    return {"account_free": await timed(lambda: leases.account_free(account), runs),
            "key_free": await timed(lambda: leases.key_free(account, key, 0), runs),
            "balance": await timed(lambda: ledger.balance(account), runs)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--url", help="a PostgreSQL database (emptied schema expected); SQLite when absent")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store: Any
        if args.url:
            from routeway.store.postgres import PostgresStore

            store = PostgresStore(args.url)
        else:
            from routeway.store.sqlite import SQLiteStore

            store = SQLiteStore(Path(folder) / "routeway.sqlite3", "normal")
        store.open()
        try:
            started = time.perf_counter()
            account, key = fill(store, args.rows)
            filled = time.perf_counter() - started
            results = asyncio.run(measure(store, account, key, args.runs))
        finally:
            store.close()
    backend = "postgresql" if args.url else "sqlite"
    print(f"{backend} rows={args.rows} fill={filled:.1f}s " + " ".join(f"{k}={v:.2f}ms" for k, v in results.items()))


if __name__ == "__main__":
    main()
