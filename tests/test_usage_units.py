"""The usage parser and the cap to a request's bound, without a server: whatever JSON an upstream puts
in its usage object, what reaches the ledger is non-negative integers within the bound."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from routeway.ledger.bound import TokenBound
from routeway.ledger.money import token_cost
from routeway.providers.anthropic import usage_of
from routeway.transform.usage import MAX_COUNT, MalformedUsage, UsageCounts

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
COUNT_FIELDS = ["prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details"]
DETAIL_FIELDS = ["cached_tokens", "reasoning_tokens", "audio_tokens"]
# a usage object shaped like OpenAI's, with any JSON (or a plausible count) in any of its places
USAGE = st.one_of(
    JSON,
    st.dictionaries(st.sampled_from(COUNT_FIELDS),
                    JSON | st.integers(min_value=0, max_value=10**9)
                    | st.dictionaries(st.sampled_from(DETAIL_FIELDS), JSON | st.integers(min_value=0, max_value=10**9))),
)
BOUNDS = st.builds(TokenBound, prompt=st.integers(min_value=0, max_value=10**7),
                   completion=st.integers(min_value=0, max_value=10**7))
PRICES = st.integers(min_value=0, max_value=10**12)  # nano-USD per 1M tokens, up to $1,000 per 1M


def billed(usage: Any, bound: TokenBound) -> UsageCounts | None:
    """What settlement takes from a usage object: its counts cut to the bound, or None (routeway
    estimates), or MalformedUsage."""
    counts = UsageCounts.from_upstream(usage)
    return None if counts is None else counts.capped_to(bound.prompt, bound.completion)


def check_within(counts: UsageCounts, bound: TokenBound) -> None:
    for value in (counts.prompt, counts.completion, counts.cached, counts.reasoning):
        assert type(value) is int and value >= 0
    assert counts.prompt <= bound.prompt and counts.completion <= bound.completion
    assert counts.cached <= counts.prompt and counts.reasoning <= counts.completion


@settings(max_examples=400, deadline=None)
@given(usage=USAGE, bound=BOUNDS, prompt_price=PRICES, completion_price=PRICES)
def test_any_usage_object_is_rejected_or_billed_within_the_bound(
        usage: Any, bound: TokenBound, prompt_price: int, completion_price: int) -> None:
    try:
        counts = billed(usage, bound)
    except MalformedUsage as bad:
        assert bad.reason in ("negative", "not_integer", "not_object")
        return
    if counts is None:
        return
    check_within(counts, bound)
    cost = token_cost(counts.prompt, prompt_price) + token_cost(counts.completion, completion_price)
    assert 0 <= cost <= bound.cost(prompt_price, completion_price)


@settings(max_examples=200, deadline=None)
@given(usage=JSON | st.dictionaries(st.sampled_from(["input_tokens", "output_tokens", "cache_read_input_tokens",
                                                     "cache_creation_input_tokens"]), JSON), bound=BOUNDS)
def test_anthropic_usage_of_anything_is_rejected_or_billed_within_the_bound(usage: Any, bound: TokenBound) -> None:
    try:
        counts = billed(usage_of(usage), bound)
    except MalformedUsage:
        return
    if counts is not None:
        check_within(counts, bound)


@given(prompt=st.integers(0, 1000), completion=st.integers(0, 1000), cached=st.integers(0, 1000),
       reasoning=st.integers(0, 1000))
def test_honest_usage_within_the_bound_is_taken_as_reported(prompt: int, completion: int, cached: int,
                                                            reasoning: int) -> None:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
             "prompt_tokens_details": {"cached_tokens": min(cached, prompt)},
             "completion_tokens_details": {"reasoning_tokens": min(reasoning, completion)}}
    counts = billed(usage, TokenBound(prompt=1000, completion=1000))
    assert counts is not None and not counts.capped
    assert (counts.prompt, counts.completion, counts.cached, counts.reasoning) == (
        prompt, completion, min(cached, prompt), min(reasoning, completion))


@pytest.mark.parametrize("usage, reason", [
    ({"prompt_tokens": -1, "completion_tokens": 3}, "negative"),
    ({"prompt_tokens": 2.5, "completion_tokens": 3}, "not_integer"),
    ({"prompt_tokens": "7", "completion_tokens": 3}, "not_integer"),
    ({"prompt_tokens": True, "completion_tokens": 3}, "not_integer"),
    ({"prompt_tokens": 1, "completion_tokens": float("nan")}, "not_integer"),
    ({"prompt_tokens": 1, "completion_tokens_details": {"reasoning_tokens": -2}}, "negative"),
    ({"prompt_tokens": 1, "prompt_tokens_details": "lots"}, "not_object"),
    ([1, 2], "not_object"),
])
def test_malformed_counts_say_why(usage: Any, reason: str) -> None:
    with pytest.raises(MalformedUsage) as bad:
        UsageCounts.from_upstream(usage)
    assert bad.value.reason == reason


def test_whole_floats_count_and_absent_counts_mean_no_usage() -> None:
    counts = UsageCounts.from_upstream({"prompt_tokens": 12.0, "completion_tokens": 3})
    assert counts is not None and (counts.prompt, counts.completion) == (12, 3) and type(counts.prompt) is int
    assert UsageCounts.from_upstream(None) is None
    assert UsageCounts.from_upstream({"total_tokens": 9}) is None  # nothing to bill: routeway estimates
    huge = UsageCounts.from_upstream({"prompt_tokens": 10**40, "completion_tokens": 1})
    assert huge is not None and huge.prompt == MAX_COUNT  # still fits a 64-bit column, for the record


def test_the_cap_flags_what_it_cut() -> None:
    counts = UsageCounts.from_upstream({"prompt_tokens": 5, "completion_tokens": 10_000_000,
                                        "completion_tokens_details": {"reasoning_tokens": 10_000_000},
                                        "prompt_tokens_details": {"cached_tokens": 9}})
    assert counts is not None
    capped = counts.capped_to(100, 10)
    assert capped.capped and (capped.prompt, capped.completion, capped.cached, capped.reasoning) == (5, 10, 5, 10)
    assert capped.native is counts.native  # the claim stays with the counts, for the record


def test_the_bound_takes_body_bytes_context_and_output_limit() -> None:
    endpoint = SimpleNamespace(context_length=8192, max_completion=1000)
    assert TokenBound.of(300, 10, endpoint) == TokenBound(prompt=300, completion=10)  # type: ignore[arg-type]
    assert TokenBound.of(50_000, None, endpoint) == TokenBound(prompt=8192, completion=1000)  # type: ignore[arg-type]
    assert TokenBound(prompt=3, completion=1).cost(1_000_000_000, 2_000_000_000) == 3_000 + 2_000
