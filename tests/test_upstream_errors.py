"""Upstream failures map to OpenRouter's statuses, before and after the first streamed byte."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import Account


def body(model: str, **extra: object) -> dict:
    return {"model": f"test/{model}", "messages": [{"role": "user", "content": "x y"}], "max_tokens": 20, **extra}


def test_rate_limit_passes_on_with_retry_after(account: Account) -> None:
    response = account.chat(body("rate-limited"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["metadata"]["error_type"] == "rate_limit_exceeded"


def test_upstream_400_is_the_clients_error(account: Account) -> None:
    response = account.chat(body("bad-request"))
    assert response.status_code == 400
    assert "prompt too long" in response.json()["error"]["message"]


def test_upstream_body_that_is_not_json_is_502(account: Account) -> None:
    response = account.chat(body("not-json"))
    assert response.status_code == 502
    assert response.json()["error"]["metadata"]["raw"].startswith("<html>")


def test_upstream_that_never_answers_is_408(account: Account) -> None:
    response = account.chat(body("hang", stream=True))
    assert response.status_code == 408
    assert "did not answer within 1 s" in response.json()["error"]["message"]
    [(_, status, cost, _)] = account.generations()
    assert status == 408 and cost == 0


def test_error_before_the_first_byte_of_a_stream_is_a_status(account: Account) -> None:
    response = account.chat(body("fail-500", stream=True))
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")


def test_error_after_the_first_byte_arrives_as_an_error_chunk(account: Account) -> None:
    response = account.chat(body("midstream-error", stream=True))
    assert response.status_code == 200
    lines = [line for line in response.text.splitlines() if line]
    assert lines[0] == ": OPENROUTER PROCESSING"
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    errors = [e for e in events if "error" in e]
    assert len(errors) == 1
    assert errors[0]["choices"][0]["finish_reason"] == "error"
    assert errors[0]["error"]["code"] == 502
    assert lines[-1] == "data: [DONE]"
    assert events[-1]["usage"]["completion_tokens"] > 0  # billed for what was relayed
    [(_gid, status, cost, cancelled)] = account.generations()
    assert status == 502 and cost > 0 and cancelled == 0


def test_openai_sdk_raises_on_a_mid_stream_error(account: Account) -> None:
    client = account.openai_client()
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(**body("midstream-error"), stream=True):
            pass


def test_parameters_are_passed_when_supported_and_dropped_otherwise(account: Account, upstream) -> None:  # type: ignore[no-untyped-def]
    account.chat(body("echo", temperature=0.6, top_p=0.95, top_k=20, repetition_penalty=1.1, min_p=0.05, seed=7,
                      stop=["\n\n"], reasoning={"effort": "high"}))
    sent = upstream.requests[-1]
    assert sent["model"] == "echo" and sent["max_tokens"] == 20
    assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["repetition_penalty"]) == (0.6, 0.95, 20, 1.1)
    assert sent["seed"] == 7 and sent["stop"] == ["\n\n"] and sent["reasoning_effort"] == "high"
    assert "min_p" not in sent  # test/echo does not declare min_p
    gid = account.gateway.rows("SELECT id FROM generations WHERE account_id = ?", (account.id,))[0][0]
    generation = httpx.get(account.gateway.api + "/generation", params={"id": gid},
                           headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
    assert generation["provider_responses"][0]["dropped_parameters"] == ["min_p"]


def test_slow_non_streaming_answer_keeps_the_connection_alive(account: Account) -> None:
    # keepalive_seconds is 0.5 in the test config; test/slow answers after 0.3-1 s under load
    response = account.chat(body("hang"))  # hangs until the 1 s first-byte timeout: the error travels in a 200
    assert response.status_code == 200
    assert response.text.startswith("\n")
    assert response.json()["error"]["code"] == 408


def test_first_byte_timeout_does_not_bound_the_gaps_of_a_stream(tmp_path, upstream) -> None:  # type: ignore[no-untyped-def]
    """first_byte (0.1 s) is shorter than the trickle's 150 ms gaps and idle (3 s) is longer than its gaps."""
    from tests.conftest import start_gateway, stop_gateway
    config = tmp_path / "routeway.toml"
    config.write_text(f'[[providers]]\nname = "p"\nkind = "openai"\nbase_url = "{upstream.base_url}"\n'
                      '[providers.timeouts]\nfirst_byte = 0.1\nidle = 3\n'
                      '[[models]]\nid = "t/trickle"\ncontext_length = 8192\n'
                      '[[endpoints]]\nmodel = "t/trickle"\nprovider = "p"\nupstream_model = "trickle#gaps"\n')
    gateway = start_gateway(config, tmp_path / "data")
    try:
        account = gateway.account()
        response = account.chat({"model": "t/trickle", "messages": [{"role": "user", "content": "x"}],
                                 "max_tokens": 20, "stream": True})
        assert response.status_code == 200 and '"error"' not in response.text
        assert "t9 " in response.text
    finally:
        stop_gateway(gateway)


def test_upstream_cookies_do_not_ride_along_on_later_requests(tmp_path, upstream) -> None:  # type: ignore[no-untyped-def]
    """A cookie one user's request got from the upstream must not be sent with another's. (By hostname:
    aiohttp's default jar ignores cookies from IP addresses, which would hide the problem.)"""
    from tests.conftest import start_gateway, stop_gateway
    config = tmp_path / "routeway.toml"
    config.write_text(f'[[providers]]\nname = "p"\nkind = "openai"\nbase_url = "http://localhost:{upstream.port}/v1"\n'
                      '[[models]]\nid = "t/echo"\ncontext_length = 8192\n'
                      '[[endpoints]]\nmodel = "t/echo"\nprovider = "p"\nupstream_model = "echo#cookies"\n')
    gateway = start_gateway(config, tmp_path / "data")
    try:
        first, second = gateway.account(name="first"), gateway.account(name="second")
        request = {"model": "t/echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
        assert first.chat(request).status_code == 200  # the mock answers with Set-Cookie
        assert second.chat(request).status_code == 200
        assert not {"Cookie", "cookie"} & set(upstream.request_headers[-1])
    finally:
        stop_gateway(gateway)
