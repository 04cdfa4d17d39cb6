"""The routing that issue 2 needs: model fallbacks, provider order/only/ignore, keep-alives, no config."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import Account, start_gateway, stop_gateway


def ask(account: Account, **extra: object) -> httpx.Response:
    return account.chat({"messages": [{"role": "user", "content": "route me"}], "max_tokens": 5, **extra})


def test_model_fallbacks_bill_the_model_that_answered(fresh_gateway) -> None:  # type: ignore[no-untyped-def]
    account = fresh_gateway.account()
    response = ask(account, model="test/fail-500", models=["test/bad-request", "test/echo"])
    # 500 falls back; the 400 from the second model is the client's error and stops the chain
    assert response.status_code == 400
    response = ask(account, model="test/fail-500", models=["test/rate-limited", "test/echo"])
    assert response.status_code == 200 and response.json()["model"] == "test/echo"
    generation = httpx.get(account.gateway.api + "/generation", params={"id": response.json()["id"]},
                           headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
    assert generation["model"] == "test/echo"
    assert [(a["model"], a["status"]) for a in generation["provider_responses"]] == [
        ("test/fail-500", 500), ("test/rate-limited", 429), ("test/echo", 200)]
    # charged at test/echo's price for its own tokens only
    assert generation["total_cost"] == pytest.approx(
        (generation["tokens_prompt"] * 1 + generation["tokens_completion"] * 2) / 1e6)


def test_provider_order_only_and_ignore(fresh_gateway) -> None:  # type: ignore[no-untyped-def]
    account = fresh_gateway.account()
    assert ask(account, model="test/fallback", provider={"order": ["mock-b"]}).json()["provider"] == "Mock Engine B"
    assert ask(account, model="test/fallback", provider={"only": ["mock-b"]}).json()["provider"] == "Mock Engine B"
    failed = ask(account, model="test/fallback", provider={"ignore": ["mock-b"]})
    assert failed.status_code == 502
    failed = ask(account, model="test/fallback", provider={"order": ["mock"], "allow_fallbacks": False})
    assert failed.status_code == 502
    nothing = ask(account, model="test/fallback", provider={"only": ["elsewhere"]})
    assert nothing.status_code == 404 and nothing.json()["error"]["metadata"]["availability"]["code"] == "constraint_filtered"


def test_processing_comments_repeat_until_the_first_token(account: Account) -> None:
    response = ask(account, model="test/late-stream", stream=True)
    head = response.text.split("data: ", 1)[0]
    # keepalive_seconds = 0.5 and the first token comes after 1.2 s
    assert head.count(": OPENROUTER PROCESSING") >= 2


def test_serve_without_config_has_the_catalog_and_explains_the_503(tmp_path: Path) -> None:
    # the default local model switched off (tests/test_local_model.py has it on)
    gateway = start_gateway(None, tmp_path / "data", {"ROUTEWAY_DEFAULT_MODEL": "0"})
    try:
        models = httpx.get(gateway.api + "/models").json()
        assert models["total_count"] >= 30
        assert all(m["endpoint_count"] == 0 for m in models["data"])
        account = gateway.account()
        response = ask(account, model="nousresearch/hermes-4-70b")
        assert response.status_code == 503
        message = response.json()["error"]["message"]
        assert "nousresearch/hermes-4-70b" in message and "OPENROUTER_API_KEY" in message
        assert account.generations() == []
    finally:
        stop_gateway(gateway)


def test_endpoint_health_survives_a_restart(upstream, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import write_config
    config = write_config(tmp_path / "routeway.toml", upstream.base_url)
    first = start_gateway(config, tmp_path / "data")
    try:
        account = first.account()
        for _ in range(2):
            assert ask(account, model="test/fallback", provider={"order": ["mock", "mock-b"]}).status_code == 200
    finally:
        stop_gateway(first)  # shutdown flushes the per-minute counters
    second = start_gateway(config, tmp_path / "data")
    try:
        data = httpx.get(second.api + "/models/test/fallback/endpoints").json()["data"]["endpoints"]
        uptime = {e["tag"]: e["uptime_last_1d"] for e in data}
        assert uptime == {"mock": 0.0, "mock-b": 100.0}
    finally:
        stop_gateway(second)
