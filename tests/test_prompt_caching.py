"""Upstream prompt caching: a client's `cache_control` breakpoints reach an Anthropic upstream where it put
them, and the prompt tokens the upstream read from or wrote into its cache are billed at the endpoint's
cache prices (`input_cache_read` / `input_cache_write`), to the nano-dollar."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from routeway.ledger.bound import TokenBound
from routeway.ledger.metering import GenerationRecord
from routeway.transform.usage import UsageCounts

from tests.conftest import Account, Gateway, start_gateway, stop_gateway
from tests.support.anthropic_upstream import MockAnthropic

EPHEMERAL = {"type": "ephemeral"}
# The mock's usage: 10 plain input tokens, 4 read from the cache, 2 written into it, 7 output tokens.
# Claude Sonnet 4 in the catalog: $3 / $15 per 1M, cache reads $0.30, cache writes $3.75.
SONNET_COST = (10 * 3_000 + 4 * 300 + 2 * 3_750) + 7 * 15_000  # nano-USD: 143,700
# test/claude-priced, priced in the config: $2 / $10, reads $0.2, writes $2.5
CONFIGURED_COST = (10 * 2_000 + 4 * 200 + 2 * 2_500) + 7 * 10_000


@pytest.fixture(scope="module")
def claude_gateway(anthropic: MockAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("prompt-caching")
    (root / "routeway.toml").write_text(f'''
[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{anthropic.base_url}"
api_key_env = "TEST_ANTHROPIC_KEY"

[[models]]
id = "test/claude-priced"
context_length = 200000
prompt_price = "3"
completion_price = "15"

[[endpoints]]
model = "anthropic/claude-sonnet-4"
provider = "anthropic"
upstream_model = "claude-echo"

[[endpoints]]
model = "test/claude-priced"
provider = "anthropic"
upstream_model = "claude-echo"
prompt_price = "2"
completion_price = "10"
input_cache_read = "0.2"
input_cache_write = "2.5"
''')
    gateway = start_gateway(root / "routeway.toml", root / "data", {"TEST_ANTHROPIC_KEY": "test-anthropic-key"})
    yield gateway
    stop_gateway(gateway)


@pytest.fixture()
def account(claude_gateway: Gateway) -> Account:
    return claude_gateway.account(credits=5)



def _charges(account: Account) -> list[int]:
    return [-row[0] for row in account.gateway.rows(
        "SELECT amount_nano FROM ledger WHERE account_id = ? AND kind = 'charge' ORDER BY created_at", (account.id,))]


def test_cache_control_reaches_the_anthropic_upstream(account: Account, anthropic: MockAnthropic) -> None:
    messages: Any = [
        {"role": "system", "content": [{"type": "text", "text": "A long, stable preamble.", "cache_control": EPHEMERAL},
                                       {"type": "text", "text": "Today's note."}]},
        {"role": "user", "content": [{"type": "text", "text": "a big document", "cache_control": {"type": "ephemeral",
                                                                                                 "ttl": "1h"}},
                                     {"type": "text", "text": "the question"}]},
    ]
    account.openai_client().chat.completions.create(model="anthropic/claude-sonnet-4", max_tokens=100, messages=messages)
    sent = anthropic.requests[-1]
    assert sent["system"] == [{"type": "text", "text": "A long, stable preamble.", "cache_control": EPHEMERAL},
                              {"type": "text", "text": "Today's note."}]
    assert sent["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "a big document", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "the question"}]}]
    # without a breakpoint the system prompt stays one string, as before
    account.openai_client().chat.completions.create(model="anthropic/claude-sonnet-4", max_tokens=100, messages=[
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}])
    assert anthropic.requests[-1]["system"] == "Be terse."


@pytest.mark.parametrize("stream", [False, True])
def test_cached_prompt_tokens_are_billed_at_the_cache_prices(account: Account, stream: bool) -> None:
    client = account.openai_client()
    for model, expected in (("anthropic/claude-sonnet-4", SONNET_COST), ("test/claude-priced", CONFIGURED_COST)):
        messages: Any = [{"role": "user", "content": "hello"}]
        if stream:
            chunks = list(client.chat.completions.create(model=model, max_tokens=100, messages=messages, stream=True))
            usage = chunks[-1].usage
        else:
            usage = client.chat.completions.create(model=model, max_tokens=100, messages=messages).usage
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == (16, 7)
        assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 4
        assert usage.prompt_tokens_details.cache_write_tokens == 2
        assert _charges(account)[-1] == expected
        assert usage.model_extra["cost"] == expected / 1e9
    assert account.ledger_sum() == 5_000_000_000 - SONNET_COST - CONFIGURED_COST


def test_the_catalog_lists_the_cache_prices(claude_gateway: Gateway) -> None:
    endpoints = httpx.get(claude_gateway.api + "/models/test/claude-priced/endpoints", timeout=10).json()
    pricing = endpoints["data"]["endpoints"][0]["pricing"]
    assert (pricing["input_cache_read"], pricing["input_cache_write"]) == ("0.0000002", "0.0000025")
    sonnet = next(m for m in httpx.get(claude_gateway.api + "/models", timeout=10).json()["data"]
                  if m["id"] == "anthropic/claude-sonnet-4")
    assert (sonnet["pricing"]["input_cache_read"], sonnet["pricing"]["input_cache_write"]) == ("0.0000003", "0.00000375")


@pytest.mark.parametrize("cache_control", [{"type": "persistent"}, "ephemeral", {"type": "ephemeral", "ttl": "2h"},
                                           {"type": "ephemeral", "extra": 1}])
def test_a_malformed_cache_control_is_a_400_naming_it(account: Account, cache_control: Any) -> None:
    answer = account.chat({"model": "anthropic/claude-sonnet-4", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": cache_control}]}]})
    assert answer.status_code == 400
    assert answer.json()["error"]["metadata"]["param"] == "messages[0].content[0].cache_control"


def _record(prompt: int, completion: int, read: int, written: int) -> GenerationRecord:
    record = GenerationRecord(id="g", account_id="a", key_hash="k", model="m", provider_name="p", provider_slug="p",
                              upstream_model="u", prompt_nano_per_m=3_000_000_000, completion_nano_per_m=15_000_000_000,
                              streamed=False, created_at=0, cache_read_nano_per_m=300_000_000,
                              cache_write_nano_per_m=3_750_000_000)
    record.tokens_prompt, record.tokens_completion = prompt, completion
    record.tokens_cache_read, record.tokens_cache_write = read, written
    return record


def test_claimed_cache_tokens_are_cut_to_the_prompt_and_the_charge_stays_within_the_bound() -> None:
    claimed = UsageCounts.from_upstream({"prompt_tokens": 50, "completion_tokens": 5, "prompt_tokens_details": {
        "cached_tokens": 30, "cache_write_tokens": 10_000}})
    assert claimed is not None
    capped = claimed.capped_to(40, 10)
    assert (capped.prompt, capped.cached, capped.cache_write, capped.capped) == (40, 30, 10, True)
    # a prompt written into the cache in full costs the write price, which the reservation's bound assumes
    bound = TokenBound(prompt=1_000, completion=100)
    worst = bound.cost(3_750_000_000, 15_000_000_000)
    assert _record(1_000, 100, 0, 1_000).cost() == worst
    assert _record(1_000, 100, 600, 400).cost() == 600 * 300 + 400 * 3_750 + 100 * 15_000
    assert _record(10, 1, 50, 50).cost() == 10 * 300 + 15_000  # claims beyond the prompt are read within it
