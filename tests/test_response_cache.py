"""The response cache (OpenRouter's `X-OpenRouter-Cache*` headers) against a real gateway and the mock
upstream: a hit is free, never crosses keys or accounts, replays streams event for event, expires, and
never keeps errors or partial streams."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import openai

from routeway.web.core import usd

from tests.conftest import Account, Gateway
from tests.support.dashboard_client import signed_in
from tests.support.upstream import MockUpstream

ON = {"X-OpenRouter-Cache": "true"}


def _body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "test/echo", "messages": [{"role": "user", "content": text}], "max_tokens": 50, **extra}


def _unique() -> str:
    return f"cache me {uuid.uuid4().hex}"


def _events(raw: bytes) -> list[bytes]:
    return [part for part in raw.split(b"\n\n") if part]


def _stream(account: Account, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    with httpx.stream("POST", account.gateway.api + "/chat/completions", json={**body, "stream": True}, timeout=30,
                      headers={"authorization": f"Bearer {account.api_key}", **headers}) as response:
        response.read()
    return response


def _generation(account: Account, generation_id: str) -> dict[str, Any]:
    answer = httpx.get(account.gateway.api + "/generation", params={"id": generation_id}, timeout=30,
                       headers={"authorization": f"Bearer {account.api_key}"})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def test_a_hit_replays_the_answer_free_without_calling_the_upstream(account: Account, upstream: MockUpstream) -> None:
    body = _body(_unique())
    first = account.chat(body, headers=ON)
    calls = len(upstream.requests)
    second = account.chat(body, headers=ON)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert len(upstream.requests) == calls  # no upstream call
    assert first.headers["x-openrouter-cache-status"] == "MISS"
    assert second.headers["x-openrouter-cache-status"] == "HIT"
    assert second.headers["x-openrouter-cache-source-id"] == first.json()["id"]
    assert 0 <= int(second.headers["x-openrouter-cache-age"]) <= 300
    assert 0 < int(second.headers["x-openrouter-cache-ttl"]) <= 300
    one, two = first.json(), second.json()
    assert two["id"] != one["id"] and two["id"] == second.headers["x-generation-id"]
    assert two["choices"] == one["choices"] and two["model"] == one["model"] and two["created"] == one["created"]
    assert one["usage"]["cost"] > 0 and two["usage"]["cost"] == 0 and two["usage"]["total_tokens"] == 0
    # charged once, to the nano-dollar; the hit is a free generation that says what it saved
    rows = dict((r[0], r) for r in account.gateway.rows(
        "SELECT id, total_cost_nano, cache_hit, cache_saved_nano FROM generations WHERE account_id = ?", (account.id,)))
    assert rows[one["id"]][1:] == (rows[one["id"]][1], 0, 0) and rows[one["id"]][1] > 0
    assert rows[two["id"]][1:] == (0, 1, rows[one["id"]][1])
    assert account.ledger_sum() == 10_000_000_000 - rows[one["id"]][1]
    hit = _generation(account, two["id"])
    assert hit["cache_hit"] is True and hit["total_cost"] == 0 and hit["cache_savings"] == one["usage"]["cost"]
    with signed_in(account.gateway.url, account.management_key) as dashboard:
        page = dashboard.get("/activity").text
    saved = re.search(r'Saved by the response cache \((\d+) hits\)</span><span class="stat-value" '
                      r'id="total-cache-savings">([^<]+)<', page)
    assert saved is not None and saved.groups() == ("1", usd(one["usage"]["cost"]))


def test_the_cache_never_crosses_keys_or_accounts(gateway: Gateway, account: Account, upstream: MockUpstream) -> None:
    body = _body(_unique())
    assert account.chat(body, headers=ON).headers["x-openrouter-cache-status"] == "MISS"
    other_account = gateway.account(name="someone else")
    calls = len(upstream.requests)
    crossed = other_account.chat(body, headers=ON)
    assert crossed.headers["x-openrouter-cache-status"] == "MISS" and len(upstream.requests) == calls + 1
    other_key = gateway.admin("POST", f"/admin/accounts/{account.id}/keys",
                              {"name": "second", "management": False}).json()["key"]
    assert account.chat(body, key=other_key, headers=ON).headers["x-openrouter-cache-status"] == "MISS"
    assert len(upstream.requests) == calls + 2
    assert account.chat(body, headers=ON).headers["x-openrouter-cache-status"] == "HIT"


def test_a_cached_stream_replays_the_same_events_with_only_the_id_changed(account: Account,
                                                                          upstream: MockUpstream) -> None:
    body = _body(_unique() + " in several words")
    first = _stream(account, body, ON)
    calls = len(upstream.requests)
    second = _stream(account, body, ON)
    assert len(upstream.requests) == calls
    assert (first.headers["x-openrouter-cache-status"], second.headers["x-openrouter-cache-status"]) == ("MISS", "HIT")
    first_id, second_id = first.headers["x-generation-id"], second.headers["x-generation-id"]
    old, new = _events(first.read()), _events(second.read())
    assert new[-1] == old[-1] == b"data: [DONE]"
    # every event before the usage chunk is the same bytes, bar the generation id
    assert [e.replace(first_id.encode(), second_id.encode()) for e in old[:-2]] == new[:-2]
    assert len(old) > 5 and all(first_id.encode() not in e for e in new)
    usage = openai.types.chat.ChatCompletionChunk.model_validate_json(new[-2].removeprefix(b"data: "))
    assert usage.usage is not None and usage.usage.total_tokens == 0 and usage.usage.model_extra["cost"] == 0
    # a whole answer and a stream are cached apart (their replays differ in shape)
    assert account.chat(body, headers=ON).headers["x-openrouter-cache-status"] == "MISS"


def test_entries_expire_after_their_ttl(account: Account) -> None:
    body = _body(_unique())
    headers = {**ON, "X-OpenRouter-Cache-TTL": "1.5"}  # read as 1 second, as OpenRouter reads it
    assert account.chat(body, headers=headers).headers["x-openrouter-cache-ttl"] == "1"
    time.sleep(2.1)
    assert account.chat(body, headers=headers).headers["x-openrouter-cache-status"] == "MISS"
    assert account.chat(body, headers=headers).headers["x-openrouter-cache-status"] == "HIT"


def test_the_cache_is_opt_in_per_request_and_per_account(gateway: Gateway, account: Account,
                                                         upstream: MockUpstream) -> None:
    body = _body(_unique())
    calls = len(upstream.requests)
    for _ in range(2):
        plain = account.chat(body)
        assert plain.status_code == 200 and "x-openrouter-cache-status" not in plain.headers
    assert len(upstream.requests) == calls + 2  # no header, no account default: no cache
    turned_on = gateway.admin("PUT", f"/admin/accounts/{account.id}/response-cache", {"enabled": True, "ttl_seconds": 600})
    assert turned_on.status_code == 200 and turned_on.json()["data"]["ttl_seconds"] == 600
    assert account.chat(body).headers["x-openrouter-cache-status"] == "MISS"
    hit = account.chat(body)
    assert hit.headers["x-openrouter-cache-status"] == "HIT" and int(hit.headers["x-openrouter-cache-ttl"]) > 300
    opted_out = account.chat(body, headers={"X-OpenRouter-Cache": "false"})
    assert "x-openrouter-cache-status" not in opted_out.headers and opted_out.json()["usage"]["cost"] > 0
    cleared = account.chat(body, headers={"X-OpenRouter-Cache-Clear": "true"})
    assert cleared.headers["x-openrouter-cache-status"] == "MISS"
    assert gateway.admin("PUT", f"/admin/accounts/{account.id}/response-cache", {"enabled": False}).status_code == 200
    assert "x-openrouter-cache-status" not in account.chat(body).headers
    bad = gateway.admin("PUT", f"/admin/accounts/{account.id}/response-cache", {"enabled": True, "ttl_seconds": 0})
    assert bad.status_code == 400 and bad.json()["error"]["metadata"]["param"] == "ttl_seconds"


def test_errors_and_partial_streams_are_never_cached(account: Account, upstream: MockUpstream) -> None:
    for model in ("test/fail-500", "test/bad-request"):
        body = {**_body(_unique()), "model": model}
        calls = len(upstream.requests)
        assert account.chat(body, headers=ON).status_code >= 400
        assert account.chat(body, headers=ON).status_code >= 400
        assert len(upstream.requests) == calls + 2
    body = {**_body(_unique() + " one two three"), "model": "test/midstream-error"}
    first = _stream(account, body, ON)
    assert b'"finish_reason":"error"' in first.read()
    calls = len(upstream.requests)
    second = _stream(account, body, ON)
    assert second.headers["x-openrouter-cache-status"] == "MISS" and len(upstream.requests) == calls + 1
