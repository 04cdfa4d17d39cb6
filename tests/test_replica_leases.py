"""Two separate `routeway serve` replicas on one PostgreSQL database share an account's credit and a key's
limit through credit leases, exactly; a key deleted through one is refused by the other within a second."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import APIStatusError, OpenAI

from tests.conftest import start_gateway, stop_gateway, write_config
from tests.support.otlp_receiver import eventually
from tests.support.postgres import ThrowawayDatabase, available, rows
from tests.support.upstream import MockUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not available(), reason="no PostgreSQL on 127.0.0.1:5432")]

BODY: dict[str, Any] = {"model": "test/echo", "messages": [{"role": "user", "content": "hello there"}],
                        "max_tokens": 10}


def hammer(urls: list[str], keys: list[str], requests: int) -> list[tuple[int, str | None]]:
    clients = [OpenAI(base_url=url + "/api/v1", api_key=key, max_retries=0, timeout=30) for url in urls for key in keys]

    def one(i: int) -> tuple[int, str | None]:
        try:
            return (200, clients[i % len(clients)].chat.completions.create(**BODY).id)
        except APIStatusError as error:
            return (error.status_code, None)

    try:
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(one, range(requests)))
    finally:
        for client in clients:
            client.close()


def test_two_replicas_spend_one_balance_and_one_key_limit_exactly(upstream: MockUpstream, database: ThrowawayDatabase,
                                                                   tmp_path: Path) -> None:
    url = database.url_for(str(tmp_path))
    config = write_config(tmp_path / "routeway.toml", upstream.base_url)
    replicas = [start_gateway(config, tmp_path / name, {"ROUTEWAY_DATABASE_URL": url}) for name in ("a", "b")]
    try:
        account = replicas[0].account(credits=0.004)
        limited = replicas[0].admin("POST", f"/admin/accounts/{account.id}/keys",
                                    {"name": "tight", "management": False, "limit": 0.0015}).json()
        results = hammer([r.url for r in replicas], [account.api_key, limited["key"]], 600)
        statuses = Counter(status for status, _ in results)
        assert statuses[200] > 50 and statuses[402] > 0 and set(statuses) <= {200, 402}, statuses
        charges = rows(url, "SELECT key_hash, generation_id, amount_nano FROM ledger WHERE account_id = %s AND"
                            " kind = 'charge'", (account.id,))
        assert 0 < -sum(amount for _, _, amount in charges) <= 4_000_000
        assert 0 < -sum(a for k, _, a in charges if k == limited["data"]["hash"]) <= 1_500_000
        acknowledged = [gen for status, gen in results if status == 200]
        records = dict(rows(url, "SELECT id, total_cost_nano FROM generations WHERE account_id = %s", (account.id,)))
        assert len(acknowledged) == len(set(acknowledged)) == len(records) and set(acknowledged) == set(records)
        assert {gen: -amount for _, gen, amount in charges} == {g: c for g, c in records.items() if c}

        # a key deleted through one replica is refused by the other within a second
        doomed = replicas[0].admin("POST", f"/admin/accounts/{account.id}/keys",
                                   {"name": "doomed", "management": False}).json()
        other = replicas[1].api + "/key"
        assert httpx.get(other, headers={"authorization": f"Bearer {doomed['key']}"}, timeout=10).status_code == 200
        deleted = httpx.delete(f"{replicas[0].api}/keys/{doomed['data']['hash']}", timeout=10,
                               headers={"authorization": f"Bearer {account.management_key}"})
        assert deleted.status_code == 200, deleted.text
        time.sleep(1.0)
        assert httpx.get(other, headers={"authorization": f"Bearer {doomed['key']}"}, timeout=10).status_code == 401
    finally:
        for replica in replicas:
            stop_gateway(replica)
    assert rows(url, "SELECT COUNT(*) FROM credit_leases") == [(0,)]  # each returned its leases at shutdown


def test_workers_on_postgresql_share_it_through_leases(upstream: MockUpstream, database: ThrowawayDatabase,
                                                       tmp_path: Path) -> None:
    url = database.url_for(str(tmp_path))
    gw = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url), tmp_path / "data",
                       {"ROUTEWAY_DATABASE_URL": url}, args=("--workers", "2"))
    try:
        account = gw.account(credits=0.002)
        results = hammer([gw.url], [account.api_key], 200)
        assert {status for status, _ in results} <= {200, 402} and any(s == 402 for s, _ in results)
        charged = -rows(url, "SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = %s AND"
                             " kind = 'charge'", (account.id,))[0][0]
        assert 0 < charged <= 2_000_000
        holders = {h for (h,) in rows(url, "SELECT DISTINCT holder FROM credit_leases")}
        assert len(holders) >= 1  # the workers' leases, in PostgreSQL
    finally:
        stop_gateway(gw)
    assert gw.process.returncode == 0
    assert rows(url, "SELECT COUNT(*) FROM credit_leases") == [(0,)]


def test_a_guardrail_budget_holds_across_two_replicas_on_postgresql(upstream: MockUpstream,
                                                                      database: ThrowawayDatabase,
                                                                      tmp_path: Path) -> None:
    url = database.url_for(str(tmp_path))
    config = write_config(tmp_path / "routeway.toml", upstream.base_url)
    replicas = [start_gateway(config, tmp_path / name, {"ROUTEWAY_DATABASE_URL": url}) for name in ("a", "b")]
    try:
        account = replicas[0].account(credits=10.0)
        auth = {"authorization": f"Bearer {account.management_key}"}
        key_hash = httpx.get(replicas[0].api + "/key", timeout=10,
                             headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]["hash"]
        made = httpx.post(replicas[0].api + "/guardrails", headers=auth, timeout=10,
                          json={"name": "cent", "limit_usd": 0.01, "reset_interval": "daily"}).json()["data"]
        # the other replica follows the change log (every 0.25 s; a loaded CI machine may take longer)
        eventually(lambda: httpx.get(f"{replicas[1].api}/guardrails/{made['id']}", headers=auth,
                                     timeout=10).status_code == 200, "the guardrail on the other replica")
        assigned = httpx.post(f"{replicas[1].api}/guardrails/{made['id']}/assignments/keys", headers=auth, timeout=10,
                              json={"key_hashes": [key_hash]})
        assert assigned.status_code == 200, assigned.text
        for replica in replicas:  # both hold the key's budget before the load starts
            eventually(lambda replica=replica: httpx.get(replica.api + "/key", timeout=10, headers={
                "authorization": f"Bearer {account.api_key}"}).json()["data"]["budgets"], "the budget on both replicas")
        greedy = {**BODY, "model": "test/huge-usage", "max_tokens": 1000}  # each charged its bound, ~$0.002

        def one(i: int) -> int:
            return httpx.post(replicas[i % 2].api + "/chat/completions", json=greedy, timeout=30,
                              headers={"authorization": f"Bearer {account.api_key}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(40)))
        assert set(statuses) == {200, 403}, statuses
        charged = -rows(url, "SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = %s"
                             " AND kind = 'charge'", (account.id,))[0][0]
        assert 0 < charged <= 10_000_000
    finally:
        for replica in replicas:
            stop_gateway(replica)
    assert rows(url, "SELECT COUNT(*) FROM credit_leases") == [(0,)]
