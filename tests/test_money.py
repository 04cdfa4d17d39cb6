"""Reserve, settle, never overspend: concurrency, disconnects and failures against the ledger."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import Account, Gateway
from tests.support.upstream import MockUpstream

NANO = 1e9


def check_books(account: Account) -> dict:
    """The ledger is the truth: its sum is the balance, and each charge matches its generation."""
    state = account.state()
    assert state["reserved"] == 0
    assert state["balance"] >= 0
    assert account.ledger_sum() == round(state["balance"] * NANO)
    charges = account.gateway.rows(
        "SELECT l.amount_nano, g.total_cost_nano FROM ledger l JOIN generations g ON g.id = l.generation_id"
        " WHERE l.account_id = ?", (account.id,))
    assert all(-amount == cost for amount, cost in charges)
    generations_total = sum(row[2] for row in account.generations())
    assert generations_total == round(state["total_usage"] * NANO)
    return state


async def burst(account: Account, n: int, body: dict, key: str | None = None) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(*[
            client.post(account.gateway.api + "/chat/completions", json=body,
                        headers={"authorization": f"Bearer {key or account.api_key}"}) for _ in range(n)])
    return [r.status_code for r in responses]


SLOW = {"model": "test/slow", "messages": [{"role": "user", "content": "spend"}], "max_tokens": 1000}


def test_concurrent_requests_cannot_overspend_the_balance(gateway: Gateway) -> None:
    # Each request reserves ~$0.00217 (its body's bytes at $1/M + 1000 tokens at $2/M): $0.005 covers two.
    account = gateway.account(credits=0.005)
    statuses = asyncio.run(burst(account, 12, SLOW))
    assert set(statuses) <= {200, 402}
    assert 1 <= statuses.count(200) < 12 and statuses.count(402) >= 1
    state = check_books(account)
    assert state["total_usage"] <= 0.005
    assert len(account.generations()) == statuses.count(200)


def test_concurrent_requests_cannot_overspend_a_key_limit(gateway: Gateway) -> None:
    account = gateway.account(credits=5)
    created = httpx.post(gateway.api + "/keys", json={"name": "capped", "limit": 0.005},
                         headers={"authorization": f"Bearer {account.management_key}"}).json()
    statuses = asyncio.run(burst(account, 12, SLOW, key=created["key"]))
    assert 1 <= statuses.count(200) < 12 and statuses.count(402) >= 1
    check_books(account)
    key = httpx.get(gateway.api + "/key", headers={"authorization": f"Bearer {created['key']}"}).json()["data"]
    assert 0 < key["usage"] <= 0.005 and key["limit_remaining"] == pytest.approx(0.005 - key["usage"])


def test_402_says_how_much_is_left(gateway: Gateway) -> None:
    account = gateway.account(credits=0.001)
    response = account.chat({**SLOW, "model": "test/echo"})
    assert response.status_code == 402
    error = response.json()["error"]
    assert "max_tokens" in error["message"] and "$0.001000" in error["message"]
    assert error["metadata"]["affordable_completion_tokens"] < 1000
    assert account.generations() == []
    # a smaller max_tokens fits
    assert account.chat({**SLOW, "model": "test/echo", "max_tokens": 100}).status_code == 200
    check_books(account)


def test_client_disconnect_mid_stream_closes_upstream_and_bills_what_was_sent(
        account: Account, upstream: MockUpstream) -> None:
    completed_before = upstream.completed_streams
    closed_before = len(upstream.closed_early)
    received = ""
    with httpx.stream("POST", account.gateway.api + "/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {account.api_key}"},
                      json={"model": "test/slow-stream", "messages": [{"role": "user", "content": "go"}],
                            "stream": True, "max_tokens": 1000}) as response:
        assert response.status_code == 200
        generation_id = response.headers["x-generation-id"]
        for line in response.iter_lines():
            if line.startswith("data: ") and '"tok ' in line:
                received += "tok "
            if received.count("tok") >= 10:
                break
    deadline = time.monotonic() + 5
    while len(upstream.closed_early) == closed_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(upstream.closed_early) == closed_before + 1, "upstream never saw its connection closed"
    written = upstream.closed_early[-1]
    print(f"upstream saw the close after writing {written} of its 200 chunks; the client read 10")
    # issue 3: closed, not drained. On the upstream's own clock (a chunk every 20 ms), the close came
    # before it had written as many chunks again as the client read; draining would reach all 200
    assert written <= 20
    assert upstream.completed_streams == completed_before
    deadline = time.monotonic() + 5
    while not account.generations() and time.monotonic() < deadline:
        time.sleep(0.02)
    [(gid, _status, _cost, cancelled)] = account.generations()
    assert gid == generation_id and cancelled == 1
    [(completion, estimated)] = account.gateway.rows(
        "SELECT tokens_completion, usage_estimated FROM generations WHERE id = ?", (gid,))
    # "tok " is one token each; a few more may have been relayed while the client was leaving
    assert estimated == 1 and 10 <= completion < 100
    state = check_books(account)
    assert 0 < state["total_usage"] < 1000 * 2 / 1e6


def test_failed_upstream_is_recorded_but_not_charged(account: Account) -> None:
    response = account.chat({"model": "test/fail-500", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
    assert response.status_code == 502
    assert "engine exploded" in response.json()["error"]["message"]
    [(_gid, status, cost, _cancelled)] = account.generations()
    assert status == 502 and cost == 0
    state = check_books(account)
    assert state["total_usage"] == 0


def test_fallback_to_the_next_endpoint_charges_once(fresh_gateway: Gateway) -> None:
    account = fresh_gateway.account()
    response = account.chat({"model": "test/fallback", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5,
                             "provider": {"order": ["mock", "mock-b"]}})
    assert response.status_code == 200, response.text
    assert response.json()["provider"] == "Mock Engine B"
    generation = httpx.get(account.gateway.api + "/generation", params={"id": response.json()["id"]},
                           headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
    assert [a["status"] for a in generation["provider_responses"]] == [500, 200]
    assert len(account.generations()) == 1
    check_books(account)


def test_missing_usage_is_estimated_and_marked(account: Account) -> None:
    response = account.chat({"model": "test/no-usage", "messages": [{"role": "user", "content": "count these words"}],
                             "max_tokens": 50})
    usage = response.json()["usage"]
    assert usage["completion_tokens"] > 0 and usage["cost"] > 0
    [(estimated,)] = account.gateway.rows("SELECT usage_estimated FROM generations WHERE id = ?", (response.json()["id"],))
    assert estimated == 1
    check_books(account)


def test_usage_survives_a_restart(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory,
                                  upstream: MockUpstream) -> None:
    from tests.conftest import start_gateway, stop_gateway, write_config
    root = tmp_path_factory.mktemp("restart")
    config = write_config(root / "routeway.toml", upstream.base_url)
    first = start_gateway(config, root / "data")
    try:
        account = first.account(credits=1)
        httpx.post(first.api + "/keys", json={"name": "l", "limit": 0.5, "limit_reset": "monthly"},
                   headers={"authorization": f"Bearer {account.management_key}"})
        assert account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "a"}], "max_tokens": 5}).status_code == 200
        before = account.state()
    finally:
        stop_gateway(first)
    second = start_gateway(config, root / "data")
    try:
        again = type(account)(second, account.id, account.management_key, account.api_key)
        after = again.state()
        assert after["total_usage"] == before["total_usage"] > 0
        assert after["total_credits"] == before["total_credits"]
        key = httpx.get(second.api + "/key", headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
        assert key["usage"] == pytest.approx(before["total_usage"]) and key["usage_monthly"] == key["usage"]
        check_books(again)
    finally:
        stop_gateway(second)


def test_client_leaving_a_non_streaming_request_cancels_it(account: Account) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(account.gateway.api + "/chat/completions", timeout=httpx.Timeout(5, read=0.15),
                   headers={"authorization": f"Bearer {account.api_key}"},
                   json={"model": "test/slow", "messages": [{"role": "user", "content": "wait"}], "max_tokens": 50})
    deadline = time.monotonic() + 5
    while not account.generations() and time.monotonic() < deadline:
        time.sleep(0.02)
    [(gid, _status, _cost, cancelled)] = account.generations()
    assert cancelled == 1
    [(completion, estimated)] = account.gateway.rows(
        "SELECT tokens_completion, usage_estimated FROM generations WHERE id = ?", (gid,))
    assert completion == 0 and estimated == 1  # nothing came back: only the prompt is billed, as estimated
    state = check_books(account)
    assert 0 < state["total_usage"] < 1e-4
