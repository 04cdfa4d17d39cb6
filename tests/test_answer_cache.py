"""The response cache on the Messages and Responses APIs, through the anthropic and openai SDKs against a
real gateway and the mock upstream: a hit is free, calls no upstream, replays the answer in its API's own
shape (a stream's events byte for byte bar the ids and the final usage), and never crosses keys."""

from __future__ import annotations

import uuid
from typing import Any

import anthropic
import httpx
import openai

from tests.conftest import Account
from tests.support.upstream import MockUpstream

ON = {"X-OpenRouter-Cache": "true"}


def _claude(account: Account, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=account.gateway.url, api_key=key or account.api_key, max_retries=0,
                               default_headers=ON)


def _openai(account: Account, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=account.gateway.url + "/v1", api_key=key or account.api_key, max_retries=0,
                         default_headers=ON)


def _rows(account: Account) -> dict[str, tuple[Any, ...]]:
    return {row[0]: row[1:] for row in account.gateway.rows(
        "SELECT id, total_cost_nano, cache_hit, cache_saved_nano, api FROM generations WHERE account_id = ?",
        (account.id,))}


def _events(raw: bytes) -> list[bytes]:
    return [part for part in raw.split(b"\n\n") if part]


def _raw_stream(account: Account, path: str, body: dict[str, Any]) -> httpx.Response:
    with httpx.stream("POST", account.gateway.api + path, json={**body, "stream": True}, timeout=30,
                      headers={"authorization": f"Bearer {account.api_key}", **ON}) as response:
        response.read()
    return response


def test_a_messages_hit_is_free_and_calls_no_upstream(account: Account, upstream: MockUpstream) -> None:
    client = _claude(account)
    request = {"model": "test/echo", "max_tokens": 50, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}
    first = client.messages.with_raw_response.create(**request)
    calls = len(upstream.requests)
    second = client.messages.with_raw_response.create(**request)
    assert len(upstream.requests) == calls
    assert (first.headers["x-openrouter-cache-status"], second.headers["x-openrouter-cache-status"]) == ("MISS", "HIT")
    one, two = first.parse(), second.parse()
    assert two.id != one.id and two.id == second.headers["x-generation-id"]
    assert second.headers["x-openrouter-cache-source-id"] == one.id
    assert two.content == one.content and two.model == one.model and two.stop_reason == one.stop_reason
    assert one.usage.output_tokens > 0 and two.usage.input_tokens == two.usage.output_tokens == 0
    rows = _rows(account)
    assert rows[one.id][0] > 0 and rows[one.id][1:3] == (0, 0)
    assert rows[two.id] == (0, 1, rows[one.id][0], "messages")
    assert account.ledger_sum() == 10_000_000_000 - rows[one.id][0]


def test_a_messages_stream_replays_its_events_bar_ids_and_usage(account: Account, upstream: MockUpstream) -> None:
    body = {"model": "test/echo", "max_tokens": 50,
            "messages": [{"role": "user", "content": f"stream {uuid.uuid4().hex} in several words"}]}
    first = _raw_stream(account, "/messages", body)
    calls = len(upstream.requests)
    second = _raw_stream(account, "/messages", body)
    assert len(upstream.requests) == calls
    assert second.headers["x-openrouter-cache-status"] == "HIT"
    old_id, new_id = first.headers["x-generation-id"].encode(), second.headers["x-generation-id"].encode()
    old, new = _events(first.read()), _events(second.read())
    delta = next(i for i, e in enumerate(old) if e.startswith(b"event: message_delta"))
    assert len(old) > 6 and [e.replace(old_id, new_id) for e in old][:delta] == new[:delta]
    assert old[delta + 1:] == new[delta + 1:] and all(old_id not in e for e in new)
    assert b'"output_tokens":0' in new[delta] and b'"output_tokens":0' not in old[delta]
    # the SDK reads a replay as a whole message with zero usage
    body["messages"][0]["content"] = uuid.uuid4().hex
    with _claude(account).messages.stream(**body) as stream:
        kept = stream.get_final_message()
    calls = len(upstream.requests)
    with _claude(account).messages.stream(**body) as stream:
        message = stream.get_final_message()
    assert len(upstream.requests) == calls and message.usage.output_tokens == 0 < kept.usage.output_tokens
    assert message.content == kept.content and message.id != kept.id


def test_a_responses_hit_is_free_whole_and_streamed(account: Account, upstream: MockUpstream) -> None:
    client = _openai(account)
    request = {"model": "test/echo", "input": f"respond {uuid.uuid4().hex}", "max_output_tokens": 50}
    first = client.responses.with_raw_response.create(**request)
    calls = len(upstream.requests)
    second = client.responses.with_raw_response.create(**request)
    assert len(upstream.requests) == calls and second.headers["x-openrouter-cache-status"] == "HIT"
    one, two = first.parse(), second.parse()
    assert two.id == second.headers["x-generation-id"] != one.id
    assert two.output_text == one.output_text and two.usage is not None and two.usage.total_tokens == 0
    assert two.usage.model_extra["cost"] == 0 and one.id[-8:] not in two.model_dump_json()
    rows = _rows(account)
    assert rows[two.id] == (0, 1, rows[one.id][0], "responses")

    kept = list(client.responses.create(**request, stream=True))  # a stream is kept apart from a whole answer
    assert len(upstream.requests) == calls + 1
    events = list(client.responses.create(**request, stream=True))
    assert len(upstream.requests) == calls + 1
    done = events[-1]
    assert done.type == "response.completed" and done.response.usage.total_tokens == 0
    assert kept[-1].response.usage.total_tokens > 0 and done.response.output_text == one.output_text
    assert [(e.type, e.sequence_number) for e in events] == [(e.type, e.sequence_number) for e in kept]
    old_suffix = kept[0].response.id.rsplit("-", 1)[-1]
    assert done.response.id != kept[0].response.id and old_suffix not in done.model_dump_json()


def test_the_cache_never_crosses_keys_or_apis(account: Account, upstream: MockUpstream) -> None:
    text = uuid.uuid4().hex
    request = {"model": "test/echo", "max_tokens": 50, "messages": [{"role": "user", "content": text}]}
    _claude(account).messages.create(**request)
    other_key = account.gateway.admin("POST", f"/admin/accounts/{account.id}/keys",
                                      {"name": "second", "management": False}).json()["key"]
    calls = len(upstream.requests)
    crossed = _claude(account, other_key).messages.with_raw_response.create(**request)
    assert crossed.headers["x-openrouter-cache-status"] == "MISS" and len(upstream.requests) == calls + 1
    # the same question by chat completions is not a Messages hit
    chat = account.chat({"model": "test/echo", "max_tokens": 50, "messages": [{"role": "user", "content": text}]},
                        headers=ON)
    assert chat.headers["x-openrouter-cache-status"] == "MISS" and len(upstream.requests) == calls + 2



def test_a_stream_failing_midway_is_not_kept(account: Account, upstream: MockUpstream) -> None:
    body = {"model": "test/midstream-error", "max_tokens": 50,
            "messages": [{"role": "user", "content": f"a b c d {uuid.uuid4().hex}"}]}
    calls = len(upstream.requests)
    for _ in range(2):
        answer = _raw_stream(account, "/messages", body)
        assert answer.headers["x-openrouter-cache-status"] == "MISS"
        assert b"event: error" in answer.read()
    assert len(upstream.requests) == calls + 2
