"""Request-rate limits: per API key when the operator sets one, and OpenRouter's `:free` limits per account.
A refused request is a 429 in OpenRouter's error shape with X-RateLimit-* headers, and costs nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream

GRATIS = ('\n[[models]]\nid = "test/gratis"\nname = "Test gratis"\ncontext_length = 8192\n'
          'prompt_price = "0"\ncompletion_price = "0"\n\n'
          '[[endpoints]]\nmodel = "test/gratis"\nprovider = "mock"\nupstream_model = "echo"\n')


@pytest.fixture(params=["in-process", "redis"])
def limited(upstream: MockUpstream, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    """The same limits counted in the process and in Redis (``[shared] redis``, a key prefix of its own)."""
    extra = GRATIS + '\n[limits]\nkey_requests = "3/minute"\nfree_requests = "2/minute"\n'
    if request.param == "redis":
        extra += f'\n[shared]\nredis = "redis://127.0.0.1:6379/0"\nprefix = "rw-test-{uuid.uuid4().hex}:"\n'
    gateway = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url, extra), tmp_path / "data")
    yield gateway
    stop_gateway(gateway)


def ask(model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def test_a_key_over_its_limit_gets_429_with_rate_limit_headers_and_is_not_billed(limited: Gateway) -> None:
    account = limited.account()
    client = openai.OpenAI(base_url=limited.api, api_key=account.api_key, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(**ask("test/echo"))
    balance, generations = account.ledger_sum(), len(account.generations())
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(**ask("test/echo"))
    response = refused.value.response
    error = response.json()["error"]
    assert error["code"] == 429 and error["metadata"]["error_type"] == "rate_limit_exceeded"
    assert "this API key" in error["message"] and "3 per 1 minute" in error["message"]
    assert response.headers["x-ratelimit-limit"] == "3" and response.headers["x-ratelimit-remaining"] == "0"
    assert int(response.headers["x-ratelimit-reset"]) > 0 and 1 <= int(response.headers["retry-after"]) <= 60
    assert account.ledger_sum() == balance and len(account.generations()) == generations

    # the limit is per key: another key of the same account still gets through
    other = limited.admin("POST", f"/admin/accounts/{account.id}/keys", {"name": "second", "management": False})
    assert account.chat(ask("test/echo"), key=other.json()["key"]).status_code == 200


def test_free_variants_are_limited_per_account_whichever_key_asks(limited: Gateway) -> None:
    account = limited.account()
    other = limited.admin("POST", f"/admin/accounts/{account.id}/keys",
                          {"name": "second", "management": False}).json()["key"]
    assert account.chat(ask("test/gratis:free")).status_code == 200
    assert account.chat(ask("test/gratis:free"), key=other).status_code == 200
    refused = account.chat(ask("test/gratis:free"), key=other)
    assert refused.status_code == 429
    assert ":free" in refused.json()["error"]["message"] and refused.headers["x-ratelimit-limit"] == "2"
    # the model itself without the variant, and paid models, are not the free limit's business
    assert account.chat(ask("test/gratis")).status_code == 200
    key = httpx.get(limited.api + "/key", headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
    assert key["free_model_daily_requests"] == {"limit": 1000, "remaining": 998, "used": 2}  # $10 granted
    assert key["is_free_tier"] is False
    assert key["rate_limit"]["requests"] == 3 and key["rate_limit"]["interval"] == "60s"


def test_the_daily_free_limit_rises_with_ten_dollars_of_credits(upstream: MockUpstream, tmp_path: Path) -> None:
    extra = GRATIS + '\n[limits]\nfree_requests = ""\nfree_daily = 1\nfree_daily_with_credits = 2\n'
    gateway = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url, extra), tmp_path / "data")
    try:
        poor, rich = gateway.account(credits=5), gateway.account(credits=10, name="rich")
        assert [poor.chat(ask("test/gratis:free")).status_code for _ in range(2)] == [200, 429]
        assert [rich.chat(ask("test/gratis:free")).status_code for _ in range(3)] == [200, 200, 429]
    finally:
        stop_gateway(gateway)


def test_counters_start_no_threads_and_expire_on_the_sweep() -> None:
    """The library's own memory storage starts a timer thread every 10 ms under load; ours must not,
    and its expired counters must still go away."""
    import asyncio
    import threading
    import time

    from routeway.api.throttle import Throttle
    from routeway.config import LimitSettings
    from routeway.ledger.book import KeyState

    throttle = Throttle(LimitSettings(key_requests="1000/second"))
    key = KeyState(hash="h", account_id="a", name="n", label="l", is_management=False, created_at=0)
    timers = 0
    for _ in range(50):
        asyncio.run(throttle.check_key(key))
        timers = max(timers, sum(isinstance(t, threading.Timer) for t in threading.enumerate()))
        time.sleep(0.002)
    assert timers == 0
    assert len(throttle.storage) > 0
    time.sleep(2.1)  # a sliding window keeps its counter for two windows
    throttle.storage.sweep()
    assert len(throttle.storage) == 0
