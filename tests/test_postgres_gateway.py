"""routeway serving from PostgreSQL: chat through the openai SDK charges to the nano-dollar with each
generation recorded once; and a PostgreSQL server of the test's own stopped under load and started again:
paid requests get a clear 503 meanwhile, nothing acknowledged is lost, and routeway recovers by itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Account, Gateway, free_port, start_gateway, stop_gateway, write_config
from tests.support.postgres import OwnServer, ThrowawayDatabase, available, rows, wait_until
from tests.support.upstream import MockUpstream

NANO = 1e9

pytestmark = pytest.mark.skipif(not available(), reason="no PostgreSQL on 127.0.0.1:5432")


def assert_books_agree(url: str, account: Account) -> dict[str, Any]:
    """The book the gateway serves equals PostgreSQL's ledger to the nano-dollar; each charge is its generation's."""
    state = account.state()
    assert state["reserved"] == 0
    [(credits, usage)] = rows(url, "SELECT SUM(CASE WHEN amount_nano > 0 THEN amount_nano ELSE 0 END),"
                                   " SUM(CASE WHEN amount_nano < 0 THEN -amount_nano ELSE 0 END) FROM ledger"
                                   " WHERE account_id = %s", (account.id,))
    assert round(state["total_credits"] * NANO) == credits
    assert round(state["total_usage"] * NANO) == usage
    charges = rows(url, "SELECT l.amount_nano, g.total_cost_nano FROM ledger l JOIN generations g"
                        " ON g.id = l.generation_id WHERE l.account_id = %s", (account.id,))
    assert all(-amount == cost for amount, cost in charges)
    [(generated,)] = rows(url, "SELECT COALESCE(SUM(total_cost_nano), 0) FROM generations WHERE account_id = %s",
                          (account.id,))
    assert generated == usage
    return state


def recorded_once(url: str, ids: list[str]) -> bool:
    counted = dict(rows(url, "SELECT g.id, COUNT(l.id) FROM generations g JOIN ledger l ON l.generation_id = g.id"
                             " WHERE g.id = ANY(%s) GROUP BY g.id", (ids,)))
    return all(counted.get(i) == 1 for i in ids)


def test_chat_through_the_openai_sdk_on_postgresql(upstream: MockUpstream, database: ThrowawayDatabase,
                                                   tmp_path: Path) -> None:
    url = database.url_for(str(tmp_path))
    config = write_config(tmp_path / "routeway.toml", upstream.base_url)
    gateway = start_gateway(config, tmp_path / "data", {"ROUTEWAY_DATABASE_URL": url})
    try:
        account = gateway.account(credits=1.0)
        client = account.openai_client()

        def one(i: int) -> str:
            messages = [{"role": "user", "content": f"hello {i}"}]
            if i % 2:
                stream = client.chat.completions.create(model="test/echo", messages=messages, max_tokens=50,  # type: ignore[call-overload]
                                                        stream=True)
                return next(chunk.id for chunk in stream)
            return client.chat.completions.create(model="test/echo", messages=messages, max_tokens=50).id  # type: ignore[call-overload]

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(one, range(24)))
        assert len(set(ids)) == 24
        wait_until(lambda: account.state()["reserved"] == 0)
        state = assert_books_agree(url, account)
        assert state["total_usage"] > 0
        assert recorded_once(url, ids)
        assert not (tmp_path / "data" / "routeway.sqlite3").exists()  # nothing went to the embedded store
        reply = httpx.get(gateway.api + "/generation", params={"id": ids[0]},
                          headers={"authorization": f"Bearer {account.api_key}"})
        assert reply.status_code == 200 and reply.json()["data"]["model"] == "test/echo"
    finally:
        stop_gateway(gateway)
    again = start_gateway(config, tmp_path / "data", {"ROUTEWAY_DATABASE_URL": url})  # the book rebuilt from PostgreSQL
    try:
        rebuilt = Account(again, account.id, account.management_key, account.api_key)
        assert rebuilt.state() == state
    finally:
        stop_gateway(again)


@pytest.fixture()
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    try:
        server = OwnServer(free_port())
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot run a PostgreSQL server of the test's own: {exc}")
    server.start()
    try:
        yield server
    finally:
        server.remove()


def chat(account: Account, i: int) -> tuple[int, dict[str, Any]]:
    answer = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": f"load {i}"}],
                           "max_tokens": 20})
    return answer.status_code, answer.json()


def test_postgresql_stopped_under_load_refuses_paid_work_and_recovers_by_itself(
        upstream: MockUpstream, own_server: OwnServer, tmp_path: Path) -> None:
    url = own_server.url
    gateway: Gateway = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url), tmp_path / "data",
                                     {"ROUTEWAY_DATABASE_URL": url})
    acknowledged: list[str] = []
    refused: list[dict[str, Any]] = []
    unexpected: list[tuple[int, Any]] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            status, body = chat(account, worker * 100_000 + i)
            if status == 200:
                acknowledged.append(body["id"])
            elif status == 503 and body["error"]["metadata"]["error_type"] == "store_unavailable":
                refused.append(body)
            else:
                unexpected.append((status, body))

    try:
        account = gateway.account(credits=5.0)
        with ThreadPoolExecutor(4) as pool:
            workers = [pool.submit(load, w) for w in range(4)]
            assert wait_until(lambda: len(acknowledged) >= 20)
            own_server.stop()
            assert wait_until(lambda: httpx.get(gateway.url + "/health").status_code == 503)
            health = httpx.get(gateway.url + "/health").json()
            assert "PostgreSQL" in health["store"]
            assert wait_until(lambda: len(refused) >= 5)
            # while it is away: a paid request, a grant and a read are clear 503s, never a 500
            status, body = chat(account, -1)
            assert status == 503 and body["error"]["metadata"]["error_type"] == "store_unavailable"
            grant = gateway.admin("POST", f"/admin/accounts/{account.id}/credits", {"amount": 1})
            assert grant.status_code == 503
            read = httpx.get(gateway.api + "/generation", params={"id": acknowledged[0]},
                             headers={"authorization": f"Bearer {account.api_key}"})
            assert read.status_code == 503 and read.json()["error"]["metadata"]["error_type"] == "store_unavailable"
            own_server.start()
            assert wait_until(lambda: httpx.get(gateway.url + "/health").status_code == 200)
            served_before = len(acknowledged)
            assert wait_until(lambda: len(acknowledged) >= served_before + 20)  # serving again, by itself
            stop.set()
            for worker in workers:
                worker.result()
        assert unexpected == []
        assert wait_until(lambda: "held_settlements" not in httpx.get(gateway.url + "/health").json())
        assert wait_until(lambda: account.state()["reserved"] == 0)
        assert recorded_once(url, acknowledged)  # every acknowledged answer is in the ledger exactly once
        assert_books_agree(url, account)
    finally:
        stop.set()
        stop_gateway(gateway)


def test_two_gateways_serve_from_one_database_at_once(upstream: MockUpstream, database: ThrowawayDatabase,
                                                       tmp_path: Path) -> None:
    """Nothing claims a PostgreSQL database: two processes write to it together (each its own accounts
    here; sharing one account's credit between processes is the credit leases' job), and a third, started
    afterwards, rebuilds every account's book from the one ledger."""
    url = database.url_for(str(tmp_path))
    config = write_config(tmp_path / "routeway.toml", upstream.base_url)
    env = {"ROUTEWAY_DATABASE_URL": url}
    first, second = (start_gateway(config, tmp_path / name, env) for name in ("one", "two"))
    try:
        accounts = [first.account(credits=1.0, name="on-one"), second.account(credits=2.0, name="on-two")]

        def spend(account: Account) -> list[str]:
            return [chat(account, i)[1]["id"] for i in range(15)]

        with ThreadPoolExecutor(2) as pool:
            ids = [i for spent in pool.map(spend, accounts) for i in spent]
        assert recorded_once(url, ids) and len(set(ids)) == 30
        states = [assert_books_agree(url, account) for account in accounts]
    finally:
        stop_gateway(first)
        stop_gateway(second)
    third = start_gateway(config, tmp_path / "three", env)
    try:
        for account, state in zip(accounts, states, strict=True):
            assert Account(third, account.id, account.management_key, account.api_key).state() == state
    finally:
        stop_gateway(third)
