"""The response cache's pieces without a server: the TTL header read as OpenRouter reads it, the cache key
(whitespace and answer-neutral fields out; key, API and stream mode in), the size bound, and a backend
that fails making a miss."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from routeway.cache.entry import AnswerRecording, CachedAnswer
from routeway.cache.policy import CachePolicy, cache_key, ttl_seconds, wanted
from routeway.cache.service import ResponseCache


@pytest.mark.parametrize(("text", "seconds"), [(None, 300), ("60", 60), ("60abc", 60), ("1.5", 1), ("0", 1),
                                               ("-5", 300), ("86401", 86_400), ("9" * 5000, 86_400), ("abc", 300),
                                               (" 42", 42), ("", 300)])
def test_the_ttl_header_is_read_as_openrouter_reads_it(text: str | None, seconds: int) -> None:
    assert ttl_seconds(text) == seconds


def test_the_header_beats_the_account_default_and_false_always_wins() -> None:
    assert wanted({}, None) is None
    assert wanted({"x-openrouter-cache": "true"}, None) == 300
    assert wanted({}, 600) == 600
    assert wanted({"x-openrouter-cache-ttl": "30"}, 600) == 30
    assert wanted({"x-openrouter-cache": "false"}, 600) is None


def test_the_key_ignores_whitespace_and_answer_neutral_fields_but_not_the_rest() -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    same = b'{"model":"m",\n "messages":[{"role":"user","content":"hi"}], "user": "u1", "session_id": "s",'\
           b' "stream": false, "metadata": {"a": "b"}}'
    assert cache_key("k", "chat", False, body) == cache_key("k", "chat", False, same)
    others = {cache_key("k2", "chat", False, body), cache_key("k", "messages", False, body),
              cache_key("k", "chat", True, body),
              cache_key("k", "chat", False, b'{"model": "m", "messages": [{"role": "user", "content": "hi"}],'
                                           b' "temperature": 0}'),
              cache_key("k", "chat", False, b'{"messages": [{"role": "user", "content": "hi"}], "model": "m"}')}
    assert cache_key("k", "chat", False, body) not in others and len(others) == 5


def test_a_recording_past_its_limit_keeps_nothing() -> None:
    recording = AnswerRecording(10)
    recording.add(b"12345")
    assert recording.text() == "12345"
    recording.add(b"678901")
    recording.add(b"2")
    assert recording.too_big and recording.text() is None


class _Backend:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.entries: dict[str, str] = {}

    async def get(self, key: str, now_ms: int) -> str | None:
        if self.fail:
            raise ConnectionError("redis is down")
        return self.entries.get(key)

    async def put(self, key: str, account_id: str, entry: str, ttl_seconds: int, now_ms: int) -> None:
        if self.fail:
            raise ConnectionError("redis is down")
        self.entries[key] = entry

    async def delete(self, key: str) -> None:
        self.entries.pop(key, None)

    async def close(self) -> None:
        return None


def _entry(body: str, created_at: int) -> CachedAnswer:
    return CachedAnswer(source_id="gen-1", created_at=created_at, ttl_seconds=60, stream=False, model="m",
                        provider_name="P", provider_slug="p", upstream_model="u", finish_reason="stop",
                        native_finish_reason="stop", cost_nano=5, body=body)


def test_entries_over_the_size_bound_are_not_kept_and_a_failing_backend_is_a_miss() -> None:
    from routeway.ledger.accounts import now_ms

    store: Any = None
    backend = _Backend()
    cache = ResponseCache(store, backend, max_entry_bytes=1_000)
    chosen = CachePolicy("key", 60, clear=False)

    async def run() -> None:
        await cache.keep(chosen, "acct", _entry("x" * 2_000, now_ms()))
        assert backend.entries == {} and await cache.lookup(chosen) is None
        await cache.keep(chosen, "acct", _entry("small", now_ms()))
        found = await cache.lookup(chosen)
        assert found is not None and found.body == "small"
        await cache.keep(chosen, "acct", _entry("old", now_ms() - 61_000))  # kept past its TTL: never served
        assert await cache.lookup(chosen) is None
        backend.fail = True
        await cache.keep(chosen, "acct", _entry("small", now_ms()))  # logged, not raised
        assert await cache.lookup(chosen) is None
        assert await cache.lookup(CachePolicy("key", 60, clear=True)) is None

    asyncio.run(run())
