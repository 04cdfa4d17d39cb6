"""An upstream's usage is untrusted input: lying providers (huge, negative, garbled counts) against a real
server. A charge never exceeds what the request could cost, never mints credit, and the client always gets
a clean answer or a clean error in OpenRouter's shape; the record and /metrics show the lie."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Account, Gateway, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream

MAX_TOKENS = 10
PROMPT_NANO_PER_TOKEN = 1_000  # the shared test config: $1 per 1M prompt tokens
COMPLETION_NANO_PER_TOKEN = 2_000  # $2 per 1M completion tokens


def ask(account: Account, model: str, stream: bool, **extra: Any) -> tuple[httpx.Response, int]:
    """Send the body as exact bytes, so the test knows the prompt bound (one token per body byte)."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "how much did this cost"}],
                       "max_tokens": MAX_TOKENS, "stream": stream, **extra}).encode()  # extra may replace them
    response = httpx.post(account.gateway.api + "/chat/completions", content=body, timeout=30,
                          headers={"authorization": f"Bearer {account.api_key}", "content-type": "application/json"})
    return response, len(body)


def bound_nano(body_bytes: int) -> int:
    return body_bytes * PROMPT_NANO_PER_TOKEN + MAX_TOKENS * COMPLETION_NANO_PER_TOKEN


def rejected(gateway: Gateway) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(httpx.get(gateway.url + "/metrics").text):
        for sample in family.samples:
            if sample.name == "routeway_usage_rejected_total":
                counts[(sample.labels["provider"], sample.labels["reason"])] = sample.value
    return counts


def generation(account: Account, generation_id: str) -> dict[str, Any]:
    reply = httpx.get(account.gateway.api + "/generation", params={"id": generation_id},
                      headers={"authorization": f"Bearer {account.api_key}"})
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


def stream_events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def answer_of(response: httpx.Response, stream: bool) -> tuple[str, dict[str, Any], str]:
    """(generation id, usage as the client saw it, content) of a clean answer."""
    if not stream:
        assert response.status_code == 200, response.text
        payload = response.json()
        return payload["id"], payload["usage"], payload["choices"][0]["message"]["content"]
    events = stream_events(response)
    assert not any("error" in event for event in events)
    content = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    return events[-1]["id"], events[-1]["usage"], content


def spent_nano(account: Account, credits_nano: int) -> int:
    """What the account lost, checked three ways: the ledger, the book, and no positive charge row."""
    state = account.state()
    assert state["reserved"] == 0
    assert account.ledger_sum() == round(state["balance"] * 1e9)
    charges = account.gateway.rows("SELECT amount_nano FROM ledger WHERE account_id = ? AND kind = 'charge'",
                                   (account.id,))
    assert all(amount < 0 for (amount,) in charges)
    return credits_nano - account.ledger_sum()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_huge_usage_is_charged_at_most_the_bound_and_recorded_as_capped(
        gateway: Gateway, stream: bool) -> None:
    account = gateway.account(credits=10)
    before = rejected(gateway).get(("mock", "capped"), 0)
    response, body_bytes = ask(account, "test/huge-usage", stream)
    generation_id, usage, content = answer_of(response, stream)
    assert content.startswith("echo:")
    assert usage["completion_tokens"] <= MAX_TOKENS and usage["prompt_tokens"] <= body_bytes
    assert 0 < spent_nano(account, 10 * 10**9) <= bound_nano(body_bytes)
    assert round(usage["cost"] * 1e9) == spent_nano(account, 10 * 10**9)
    record = generation(account, generation_id)
    assert record["usage_capped"] is True
    assert record["tokens_completion"] <= MAX_TOKENS and record["tokens_prompt"] <= body_bytes
    # the record keeps what the upstream claimed beside what was billed
    assert record["native_tokens_completion"] == 10_000_000 and record["native_tokens_prompt"] == 10_000_000
    assert rejected(gateway)[("mock", "capped")] == before + 1


@pytest.mark.parametrize("lie, reason", [("negative-usage", "negative"), ("garbled-usage", "not_integer")])
def test_malformed_usage_in_a_whole_answer_is_a_clean_502_that_costs_nothing(
        gateway: Gateway, lie: str, reason: str) -> None:
    account = gateway.account(credits=10)
    before = rejected(gateway).get(("mock", reason), 0)
    response, _ = ask(account, f"test/{lie}", False)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == 502 and error["metadata"]["error_type"] == "provider_unavailable"
    assert "usage" in error["message"]
    assert spent_nano(account, 10 * 10**9) == 0
    assert account.state()["balance"] == 10
    assert [row[1:3] for row in account.generations()] == [(502, 0)]
    assert rejected(gateway)[("mock", reason)] == before + 1


@pytest.mark.parametrize("lie, reason", [("negative-usage", "negative"), ("garbled-usage", "not_integer")])
def test_malformed_usage_after_a_relayed_stream_bills_routeways_estimate(
        gateway: Gateway, lie: str, reason: str) -> None:
    account = gateway.account(credits=10)
    before = rejected(gateway).get(("mock", reason), 0)
    response, body_bytes = ask(account, f"test/{lie}", True)
    generation_id, usage, content = answer_of(response, True)
    assert content.startswith("echo:")
    assert all(isinstance(usage[k], int) and usage[k] >= 0 for k in ("prompt_tokens", "completion_tokens"))
    spent = spent_nano(account, 10 * 10**9)
    assert 0 < spent <= bound_nano(body_bytes)  # the content was delivered: billed, but never credited
    record = generation(account, generation_id)
    assert record["usage_estimated"] is True and record["usage_rejected"] == reason
    assert record["usage_capped"] is False
    assert rejected(gateway)[("mock", reason)] == before + 1


def test_an_estimate_above_max_tokens_is_capped_too(gateway: Gateway) -> None:
    """An upstream that ignores max_tokens and sends no usage: routeway's own count is cut to the bound,
    and recorded as capped, but not counted against the provider (the count is routeway's)."""
    account = gateway.account(credits=10)
    before = rejected(gateway).get(("mock", "capped"), 0)
    response, body_bytes = ask(account, "test/no-usage", True, max_tokens=1,
                               messages=[{"role": "user", "content": "one two three four five six"}])
    generation_id, usage, content = answer_of(response, True)
    assert content == "echo: one two three four five six" and usage["completion_tokens"] == 1
    record = generation(account, generation_id)
    assert record["usage_estimated"] is True and record["usage_capped"] is True and record["tokens_completion"] == 1
    assert spent_nano(account, 10 * 10**9) <= body_bytes * PROMPT_NANO_PER_TOKEN + 1 * COMPLETION_NANO_PER_TOKEN
    assert rejected(gateway).get(("mock", "capped"), 0) == before


def test_honest_usage_is_billed_as_reported(account: Account) -> None:
    response, body_bytes = ask(account, "test/echo", False)
    generation_id, usage, _ = answer_of(response, False)
    record = generation(account, generation_id)
    assert record["usage_capped"] is False and record["usage_rejected"] is None
    assert record["native_tokens_completion"] == record["tokens_completion"] == usage["completion_tokens"] > 0
    assert record["total_cost"] * 1e9 < bound_nano(body_bytes)


@pytest.fixture(scope="module")
def liar_first(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A model whose first endpoint lies about usage and whose second is honest."""
    root = tmp_path_factory.mktemp("liar-first")
    extra = "\n".join([
        "", "[[models]]", 'id = "test/liar-first"', 'name = "Liar first"', "context_length = 8192",
        'prompt_price = "1.00"', 'completion_price = "2.00"', 'supported_parameters = ["max_tokens"]', "",
        "[[endpoints]]", 'model = "test/liar-first"', 'provider = "mock"', 'upstream_model = "negative-usage#first"', "",
        "[[endpoints]]", 'model = "test/liar-first"', 'provider = "mock-b"', 'upstream_model = "echo"', "",
    ])
    gw = start_gateway(write_config(root / "routeway.toml", upstream.base_url, extra), root / "data")
    yield gw
    stop_gateway(gw)


def test_malformed_usage_falls_back_to_the_next_endpoint(liar_first: Gateway) -> None:
    account = liar_first.account(credits=10)
    response, body_bytes = ask(account, "test/liar-first", False, provider={"order": ["mock", "mock-b"]})
    generation_id, _usage, content = answer_of(response, False)
    assert response.json()["provider"] == "Mock Engine B" and content.startswith("echo:")
    record = generation(account, generation_id)
    assert [(a["provider"], a["status"]) for a in record["provider_responses"]] == [("mock", 502), ("mock-b", 200)]
    assert "usage" in record["provider_responses"][0]["error"]
    assert 0 < spent_nano(account, 10 * 10**9) <= bound_nano(body_bytes)


def test_dashboard_generation_page_says_the_usage_was_capped(gateway: Gateway, tmp_path: Path) -> None:
    account = gateway.account(credits=10)
    response, _ = ask(account, "test/huge-usage", False)
    generation_id = response.json()["id"]
    with httpx.Client(base_url=gateway.url, timeout=30) as browser:
        page = browser.get("/signin")
        token = page.text.split('name="csrf" value="')[1].split('"')[0] if 'name="csrf"' in page.text else None
        form = {"key": account.management_key, **({"csrf": token} if token else {})}
        browser.post("/signin", data=form, headers={"origin": gateway.url})
        detail = browser.get(f"/activity/generations/{generation_id}")
    assert detail.status_code == 200, detail.text[:500]
    assert "capped" in detail.text and "10,000,000" in detail.text
