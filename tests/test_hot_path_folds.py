"""The request path's folds of bench/NOTES.md step 37 keep their behaviour, and stay folds: what each one
computes is the same as before, and the usual request no longer makes the calls the fold took out."""

from __future__ import annotations

import sqlite3
import sys
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from types import FrameType, SimpleNamespace
from typing import Any

import pytest

from routeway import dialects
from routeway.cache import policy as cache_policy
from routeway.cache.service import ResponseCache
from routeway.catalog import Endpoint, ModelInfo
from routeway.config import ProviderConfig
from routeway.store.sqlite import SQLiteStore
from routeway.transform.usage import MAX_COUNT, MalformedUsage, UsageCounts

MODEL = ModelInfo(id="test/model", name="Test", created=0, description="", context_length=1000, max_output=None,
                  prompt_price=Decimal(1), completion_price=Decimal(2), tokenizer="", instruct_type=None,
                  input_modalities=("text",), output_modalities=("text",), supported_parameters=(),
                  hugging_face_id=None, upstream_ids={})


def calls_into(module: str, work: Any) -> Counter[str]:
    """The Python functions of ``module`` that ``work()`` called, with how often."""
    seen: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, _: Any) -> None:
        if event == "call" and frame.f_globals.get("__name__") == module:
            seen[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return seen


def test_sqlite_binds_none_and_booleans_through_registered_adapters(tmp_path: Any) -> None:
    """No failed ``__adapt__`` lookup per None or bool; the stored values are what sqlite3 stored before."""
    assert SQLiteStore  # the store's module registers them on import
    assert (bool, sqlite3.PrepareProtocol) in sqlite3.adapters
    assert (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters
    connection = sqlite3.connect(tmp_path / "adapted.sqlite3")
    connection.execute("CREATE TABLE t (a, b, c)")
    connection.execute("INSERT INTO t VALUES (?, ?, ?)", (None, True, False))
    assert connection.execute("SELECT a, b, c, typeof(a), typeof(b) FROM t").fetchall() == [
        (None, 1, 0, "null", "integer")]
    connection.close()


def test_plain_usage_counts_are_read_without_helper_calls() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 13, "total_tokens": 25}
    counts: list[UsageCounts | None] = []
    called = calls_into("routeway.transform.usage", lambda: counts.append(UsageCounts.from_upstream(usage)))
    assert set(called) == {"from_upstream", "__init__"}
    read = counts[0]
    assert read is not None and (read.prompt, read.completion, read.reasoning, read.cached) == (12, 13, 0, 0)
    assert read.native is usage


@pytest.mark.parametrize("usage, expected", [
    ({"prompt_tokens": 12.0, "completion_tokens": 3}, (12, 3, 0, 0)),  # a whole float: the general path
    ({"prompt_tokens": 2**70, "completion_tokens": 1}, (MAX_COUNT, 1, 0, 0)),  # above a column: kept at the cap
    ({"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 5},
      "completion_tokens_details": {"reasoning_tokens": 2}}, (9, 4, 2, 5)),
    ({"prompt_tokens": 9, "completion_tokens": None}, (9, 0, 0, 0)),
])
def test_other_usage_objects_still_take_the_general_path(usage: dict[str, Any],
                                                         expected: tuple[int, int, int, int]) -> None:
    read = UsageCounts.from_upstream(usage)
    assert read is not None and (read.prompt, read.completion, read.reasoning, read.cached) == expected


@pytest.mark.parametrize("usage", [{"prompt_tokens": True, "completion_tokens": 1},
                                   {"prompt_tokens": -1, "completion_tokens": 1},
                                   {"prompt_tokens": 1, "completion_tokens": 1, "prompt_tokens_details": 3}])
def test_malformed_usage_is_still_refused(usage: dict[str, Any]) -> None:
    with pytest.raises(MalformedUsage):
        UsageCounts.from_upstream(usage)


def test_an_endpoint_derives_its_bounds_and_its_dialect_once() -> None:
    endpoint = Endpoint(MODEL, ProviderConfig("p", "openai", "http://x"), "m", 100, 200, 8192, None, "unknown", (),
                        "hermes", cache_write_nano_per_m=300)
    assert endpoint.prompt_bound_nano_per_m == 300  # a cache write is the dearest prompt token here
    assert endpoint.max_completion == 8192  # no max output: the context
    assert endpoint.dialect_impl is dialects.get("hermes")
    changed = replace(endpoint, max_output=64, dialect=None, cache_write_nano_per_m=None)
    assert (changed.max_completion, changed.prompt_bound_nano_per_m) == (64, 100)
    assert changed.dialect_impl is dialects.get("openai")
    assert changed == replace(endpoint, max_output=64, dialect=None, cache_write_nano_per_m=None)


def test_a_request_without_cache_header_on_an_account_without_default_reads_no_cache_header(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*_: Any) -> None:
        raise AssertionError("the cache's headers were read for a request that cannot use it")

    cache = ResponseCache(SimpleNamespace(), SimpleNamespace(), 1000)  # type: ignore[arg-type]
    key: Any = SimpleNamespace(account_id="acct", hash="h")
    monkeypatch.setattr(cache_policy, "wanted", must_not_run)
    assert cache.policy({"x-title": "t"}, key, "chat", False, b"{}") is None
    monkeypatch.undo()
    chosen = cache.policy({"x-openrouter-cache": "true"}, key, "chat", False, b"{}")
    assert chosen is not None and chosen.ttl_seconds == cache_policy.DEFAULT_TTL
    cache.account_ttls["acct"] = 60  # an account default with no header still caches
    chosen = cache.policy({}, key, "chat", False, b"{}")
    assert chosen is not None and chosen.ttl_seconds == 60
