"""Guardrails and presets across ``serve --workers 2`` on one store: a change made through one worker holds
in every worker within a second (the change log, ledger/follow.py), and a guardrail's budget is exact across
them (one lease per budget, ledger/leases.py), however the kernel spreads the requests."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway, write_config
from tests.test_workers import BODY

pytestmark = pytest.mark.e2e

FOLLOW_WAIT = 1.0  # the promise: a change reaches every worker within a second


@pytest.fixture()
def workers_gateway(upstream: Any, tmp_path: Path) -> Any:
    gw = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url), tmp_path / "data",
                       args=("--workers", "2"))
    yield gw
    stop_gateway(gw)


def manage(gw: Gateway, key: str, method: str, path: str, json: Any = None) -> httpx.Response:
    # a new connection each time: either worker may take it
    return httpx.request(method, gw.api + path, json=json, timeout=30, headers={"authorization": f"Bearer {key}"})


def hammer_body(gw: Gateway, key: str, body: dict[str, Any], requests: int) -> list[int]:
    """Status of every request, each on its own connection (so both workers answer some)."""
    statuses = []
    for _ in range(requests):
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            statuses.append(client.post(gw.api + "/chat/completions", json=body, timeout=30,
                                        headers={"authorization": f"Bearer {key}"}).status_code)
    return statuses


def test_a_guardrail_made_through_one_worker_holds_in_every_worker_within_a_second(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    account = gw.account(credits=10.0)
    assert set(hammer_body(gw, account.api_key, BODY, 20)) == {200}  # both workers know the key
    key_hash = manage(gw, account.api_key, "GET", "/key").json()["data"]["hash"]
    made = manage(gw, account.management_key, "POST", "/guardrails",
                  {"name": "say only", "allowed_models": ["test/say"]})
    assert made.status_code == 201, made.text
    time.sleep(FOLLOW_WAIT)  # the other worker knows the guardrail too: either may take the assignment
    assigned = manage(gw, account.management_key, "POST", f"/guardrails/{made.json()['data']['id']}/assignments/keys",
                      {"key_hashes": [key_hash]})
    assert assigned.status_code == 200, assigned.text
    time.sleep(FOLLOW_WAIT)
    assert set(hammer_body(gw, account.api_key, BODY, 20)) == {403}  # every worker refuses test/echo now


def test_a_preset_saved_through_one_worker_is_used_by_every_worker_within_a_second(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    account = gw.account(credits=10.0)
    saved = manage(gw, account.management_key, "POST", "/presets",
                   {"name": "echoer", "slug": "echoer", "config": {"model": "test/echo", "max_tokens": 10}})
    assert saved.status_code == 201, saved.text
    time.sleep(FOLLOW_WAIT)
    body = {"model": "@preset/echoer", "messages": [{"role": "user", "content": "hello"}]}
    assert set(hammer_body(gw, account.api_key, body, 20)) == {200}


def test_a_daily_guardrail_budget_is_never_overspent_across_workers(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    account = gw.account(credits=10.0)
    key_hash = manage(gw, account.api_key, "GET", "/key").json()["data"]["hash"]
    made = manage(gw, account.management_key, "POST", "/guardrails",
                  {"name": "one cent a day", "limit_usd": 0.01, "reset_interval": "daily"})
    assert made.status_code == 201, made.text
    guardrail_id = made.json()["data"]["id"]
    time.sleep(FOLLOW_WAIT)
    assert manage(gw, account.management_key, "POST", f"/guardrails/{guardrail_id}/assignments/keys",
                  {"key_hashes": [key_hash]}).status_code == 200
    time.sleep(FOLLOW_WAIT)
    # huge-usage claims ten million tokens: each answer is charged its reservation's bound (~$0.002)
    greedy = {**BODY, "model": "test/huge-usage", "max_tokens": 1000}
    results = hammer_greedy(gw, account.api_key, greedy, 48)
    assert {200, 403} <= set(results), results
    charged = -gw.rows("SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = ? AND kind = 'charge'",
                       (account.id,))[0][0]
    assert 0 < charged <= 10_000_000  # $0.01: never more, whichever worker answered
    assert results.count(200) >= 3  # and most of it was spendable (each request may cost ~$0.002)


def hammer_greedy(gw: Gateway, key: str, body: dict[str, Any], requests: int) -> list[int]:
    def one(_: int) -> int:
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            return client.post(gw.api + "/chat/completions", json=body, timeout=30,
                               headers={"authorization": f"Bearer {key}"}).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(requests)))
