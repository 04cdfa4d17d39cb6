"""``serve --workers 2`` on one SQLite store: money exact across processes, a worker killed mid-load, key
changes seen by every worker within a second (routeway/workers.py, ledger/leases.py, ledger/follow.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import APIConnectionError, APIStatusError, OpenAI

from routeway.ledger.leases import LEASE_TTL_MS

from tests.conftest import Gateway, start_gateway, stop_gateway, write_config

pytestmark = pytest.mark.e2e

BODY: dict[str, Any] = {"model": "test/echo", "messages": [{"role": "user", "content": "hello there"}],
                        "max_tokens": 10}


@pytest.fixture()
def workers_gateway(upstream: Any, tmp_path: Path) -> Any:
    gw = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url), tmp_path / "data",
                       args=("--workers", "2"))
    yield gw
    stop_gateway(gw)


def worker_pids(gateway: Gateway) -> list[int]:
    children = Path(f"/proc/{gateway.process.pid}/task/{gateway.process.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def hammer(url: str, keys: list[str], requests: int, threads: int = 16) -> list[tuple[int, str | None, str]]:
    """(status, generation id, key) of every request: one openai client per key shared by ``threads`` threads,
    without keep-alive, so the kernel hands every request's connection to either worker."""
    clients = {key: OpenAI(base_url=url + "/api/v1", api_key=key, max_retries=0, timeout=30,
                           http_client=httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)))
               for key in keys}

    def one(i: int) -> tuple[int, str | None, str]:
        key = keys[i % len(keys)]
        try:
            completion = clients[key].chat.completions.create(**BODY)
        except APIStatusError as error:
            return (error.status_code, None, key)
        except APIConnectionError:
            return (0, None, key)
        return (200, completion.id, key)

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(requests)))
    finally:
        for client in clients.values():
            client.close()


def test_two_workers_share_one_ledger_exactly(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    assert len(worker_pids(gw)) == 2
    account = gw.account(credits=0.004)
    limited = gw.admin("POST", f"/admin/accounts/{account.id}/keys",
                       {"name": "tight", "management": False, "limit": 0.0015}).json()
    results = hammer(gw.url, [account.api_key, limited["key"]], 600)
    statuses = Counter(status for status, _, _ in results)
    assert statuses[200] > 50 and statuses[402] > 0, statuses
    assert set(statuses) <= {200, 402}, statuses

    credits_nano = 4_000_000
    charges = gw.rows("SELECT key_hash, generation_id, amount_nano FROM ledger WHERE account_id = ? AND kind = 'charge'",
                      (account.id,))
    charged = -sum(amount for _, _, amount in charges)
    assert 0 < charged <= credits_nano
    key_charged = -sum(amount for key_hash, _, amount in charges if key_hash == limited["data"]["hash"])
    assert 0 < key_charged <= 1_500_000
    # every acknowledged generation recorded exactly once, its charge written once and equal to its record
    acknowledged = [gen for status, gen, _ in results if status == 200]
    records = dict(gw.rows("SELECT id, total_cost_nano FROM generations WHERE account_id = ?", (account.id,)))
    assert len(acknowledged) == len(set(acknowledged)) == len(records)
    assert set(acknowledged) == set(records)
    per_generation = Counter(gen for _, gen, _ in charges)
    assert max(per_generation.values()) == 1
    assert {gen: -amount for _, gen, amount in charges} == {g: c for g, c in records.items() if c}
    # the ledger is the balance; both workers show it (each refreshes what the other charged within a beat)
    deadline = time.monotonic() + 5
    while True:
        views = [account.state() for _ in range(8)]
        if all(v["total_usage_nano"] == charged for v in views) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {v["total_usage_nano"] for v in views} == {charged}
    assert account.ledger_sum() == credits_nano - charged


def holder_of(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    role = next(v for v in environ if v.startswith(b"ROUTEWAY_WORKER=")).split(b"=", 1)[1].decode()
    return role.split()[2]


def test_a_killed_worker_loses_nothing_and_its_leases_are_released(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    account = gw.account(credits=5.0)
    victim = worker_pids(gw)[0]
    victim_holder = holder_of(victim)
    with ThreadPoolExecutor(1) as background:
        load = background.submit(hammer, gw.url, [account.api_key], 400, 8)
        while not gw.rows("SELECT 1 FROM credit_leases WHERE holder = ?", (victim_holder,)):
            time.sleep(0.05)  # the victim has leased credit and is charging against it
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        while len(worker_pids(gw)) < 2 or victim in worker_pids(gw):
            time.sleep(0.05)
        # released by the supervisor when it saw the worker die, well before the lease could expire
        assert time.monotonic() - killed_at < LEASE_TTL_MS / 1000
        assert gw.rows("SELECT COUNT(*) FROM credit_leases WHERE holder = ?", (victim_holder,)) == [(0,)]
        results = load.result()
    statuses = Counter(status for status, _, _ in results)
    assert statuses[200] > 200, statuses  # the other worker kept serving, and a new one was started
    acknowledged = [gen for status, gen, _ in results if status == 200]
    records = dict(gw.rows("SELECT id, total_cost_nano FROM generations WHERE account_id = ?", (account.id,)))
    assert set(acknowledged) <= set(records)  # everything acknowledged is there ...
    charges = Counter(gen for (gen,) in gw.rows(
        "SELECT generation_id FROM ledger WHERE account_id = ? AND kind = 'charge'", (account.id,)))
    assert max(charges.values()) == 1  # ... once, with its charge
    assert set(charges) == {g for g, c in records.items() if c}
    # what is leased now is the live workers' only, and leased + free is exactly the ledger's balance
    holders = {h for (h,) in gw.rows("SELECT DISTINCT holder FROM credit_leases")}
    assert holders <= {holder_of(pid) for pid in worker_pids(gw)}
    free, leased = gw.rows(
        "SELECT (SELECT SUM(amount_nano) FROM ledger WHERE account_id = ?) - (SELECT COALESCE(SUM(granted_nano -"
        " spent_nano), 0) FROM credit_leases WHERE account_id = ? AND key_hash IS NULL), (SELECT COALESCE(SUM("
        "granted_nano - spent_nano), 0) FROM credit_leases WHERE account_id = ?)", (account.id,) * 3)[0]
    assert free + leased == account.ledger_sum() and free >= 0 and leased >= 0


def test_a_key_revoked_through_one_worker_is_refused_by_the_other_within_a_second(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    account = gw.account(credits=1.0)
    created = gw.admin("POST", f"/admin/accounts/{account.id}/keys", {"name": "doomed", "management": False}).json()
    key = created["key"]
    # each request on a new connection: the kernel hands each to either worker
    assert {status for status, _, _ in hammer(gw.url, [key], 40, 4)} == {200}
    deleted = httpx.delete(f"{gw.api}/keys/{created['data']['hash']}", timeout=10,
                           headers={"authorization": f"Bearer {account.management_key}"})
    assert deleted.status_code == 200, deleted.text
    time.sleep(1.0)
    assert {status for status, _, _ in hammer(gw.url, [key], 40, 4)} == {401}


def test_the_group_owns_the_data_folder_and_returns_its_leases_on_sigterm(upstream: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path / "routeway.toml", upstream.base_url)
    gw = start_gateway(config, tmp_path / "data", args=("--workers", "2"))
    try:
        account = gw.account(credits=1.0)
        assert {status for status, _, _ in hammer(gw.url, [account.api_key], 20, 4)} == {200}
        assert gw.rows("SELECT COUNT(*) FROM credit_leases")[0][0] >= 1
        second = subprocess.run([sys.executable, "-m", "routeway", "serve", "--config", str(config), "--port", "0",
                                 "--data-dir", str(gw.data_dir)], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "ROUTEWAY_ADMIN_KEY": "x"})
        assert second.returncode != 0
        assert f"another routeway (pid {gw.process.pid}) is serving from" in second.stderr
    finally:
        stop_gateway(gw)
    assert gw.process.returncode == 0
    assert gw.rows("SELECT COUNT(*) FROM credit_leases") == [(0,)]  # every worker returned its leases


def test_local_models_share_the_cores_between_workers(tmp_path: Path) -> None:
    from routeway.config import LocalModelConfig, ProviderConfig, Settings
    from routeway.workers import share_cores

    unset = ProviderConfig("a", "local", "", local=LocalModelConfig(tmp_path / "a.gguf"))
    chosen = ProviderConfig("b", "local", "", local=LocalModelConfig(tmp_path / "b.gguf", threads=3))
    shared = share_cores(Settings(providers=(unset, chosen)), 64)
    assert [p.local.threads for p in shared.providers if p.local] == [1, 3]  # at least one; a choice is kept
    halves = share_cores(Settings(providers=(unset,)), 2).providers[0].local
    assert halves is not None and halves.threads == max(1, (os.cpu_count() or 2) // 4)
