"""Units of the teams parts: concurrency slots (hand-over to waiters, the bounded queue, cancellation),
guardrail rules combined across policies, budgets in the book, and the preset merge."""

from __future__ import annotations

import asyncio

import pytest

from routeway.ledger.book import AccountState, Book, Budget, InsufficientFunds, KeyState
from routeway.routing.concurrency import Slots
from routeway.teams.policy import Guarded, Policy, Rules
from routeway.teams.presets import Version, merge, reference


def test_a_released_slot_goes_to_the_oldest_waiter_not_a_newcomer() -> None:
    async def scenario() -> list[str]:
        slots = Slots()
        order: list[str] = []
        assert await slots.try_acquire("e", 1)

        async def wait(name: str) -> None:
            assert await slots.acquire("e", 1, queue=2, timeout=30)
            order.append(name)

        first = asyncio.create_task(wait("first"))
        await asyncio.sleep(0)
        second = asyncio.create_task(wait("second"))
        await asyncio.sleep(0)
        assert not await slots.acquire("e", 1, queue=2, timeout=30)  # the queue of 2 is full: refused at once
        slots.release("e")
        assert not await slots.try_acquire("e", 1)  # handed to "first", who has not run yet: still taken
        await first
        slots.release("e")
        await second
        slots.release("e")
        assert dict(slots.in_flight) == {}
        return order

    assert asyncio.run(scenario()) == ["first", "second"]


def test_a_waiter_that_times_out_or_is_cancelled_takes_no_slot() -> None:
    async def scenario() -> None:
        slots = Slots()
        assert await slots.try_acquire("e", 1)
        assert not await slots.acquire("e", 1, queue=4, timeout=0.01)
        waiter = asyncio.create_task(slots.acquire("e", 1, queue=4, timeout=30))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        slots.release("e")
        assert dict(slots.in_flight) == {}
        assert await slots.try_acquire("e", 1)

    asyncio.run(scenario())


def test_rules_of_several_guardrails_combine() -> None:
    policy = Policy((Guarded("g1", "first", Rules(allowed_models=["a/x", "a/y"])),
                     Guarded("g2", "second", Rules(allowed_models=["a/y", "a/z"], ignored_models=["a/q"]))))
    assert policy.model_refusal("a/y") is None
    assert policy.model_refusal("a/y:free") is None  # a variant is its model
    refused_x, refused_z = policy.model_refusal("a/x"), policy.model_refusal("a/z")
    assert refused_x is not None and (refused_x.guardrail, refused_x.rule) == ("second", "allowed_models")
    assert refused_z is not None and (refused_z.guardrail, refused_z.rule) == ("first", "allowed_models")


def test_zdr_per_author_falls_back_to_enforce_zdr() -> None:
    rules = Rules(enforce_zdr=True, enforce_zdr_openai=False)
    assert rules.zdr_for("anthropic/claude") and rules.zdr_for("acme/tiny")
    assert not rules.zdr_for("openai/gpt-4o")


def test_each_guardrail_budget_is_reserved_and_settled_like_the_key_limit() -> None:
    book = Book()
    book.accounts["acc"] = AccountState("acc", "a", 0, credits=10**12)
    key = KeyState("k", "acc", "k", "k", False, 0, limit=10_000)
    key.budgets = (Budget("g1", "wide", 8_000, "daily"), Budget("g2", "tight", 5_000, None))
    book.keys["k"] = key
    now = 1_700_000_000_000
    first = book.reserve(key, 3_000, now)
    with pytest.raises(InsufficientFunds) as short:
        book.reserve(key, 3_000, now)  # 3,000 in flight: the tight budget has 2,000 left
    assert short.value.scope == "guardrail" and short.value.budget is key.budgets[1]
    assert short.value.available == 2_000
    second = book.reserve(key, 2_000, now)
    assert book.settle(first, 10**9, now) == 3_000  # a claim past the reservation is cut to it
    assert book.settle(second, 10**9, now) == 2_000
    assert key.budget_remaining(key.budgets[1], now) == 0 and key.budget_remaining(key.budgets[0], now) == 3_000


def test_with_leases_a_budget_spends_only_its_lease_and_a_request_over_midnight_is_charged_from_it() -> None:
    book = Book()
    book.accounts["acc"] = AccountState("acc", "a", 0, leased=10**12)
    key = KeyState("k", "acc", "k", "k", False, 0, leased=0)  # a process sharing the store
    budget = Budget("g1", "cent", 10_000_000, "daily")
    key.budgets = (budget,)
    book.keys["k"] = key
    day = 86_400_000
    before_midnight = 1_700_000_000_000 // day * day + day - 1
    with pytest.raises(InsufficientFunds) as short:
        book.reserve(key, 3_000, before_midnight)  # nothing leased of the budget: lease first
    assert short.value.budget is budget and short.value.available == 0
    key.budget_leases["g1"] = [budget.window_start(before_midnight), 5_000]
    held = book.reserve(key, 3_000, before_midnight)
    with pytest.raises(InsufficientFunds):
        book.reserve(key, 3_000, before_midnight)  # 2,000 of the lease left: not another 3,000
    assert book.settle(held, 10**9, before_midnight + 1) == 3_000  # settled after midnight, from its lease
    assert key.budget_leases["g1"][1] == 2_000
    assert key.budget_remaining(budget, before_midnight + 1) == 0  # a new window: lease it anew


def test_a_preset_merges_under_the_request() -> None:
    version = Version("v", 1, {"model": "a/x", "temperature": 0.3, "tools": [
        {"type": "function", "function": {"name": "look"}}]}, "Be brief.", 0)
    body = {"model": "@preset/p", "temperature": 0.9, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "look", "description": "mine"}},
                      {"type": "function", "function": {"name": "add"}}]}
    merged = merge(body, version, None)
    assert merged["model"] == "a/x" and merged["temperature"] == 0.9
    assert [t["function"]["name"] for t in merged["tools"]] == ["look", "add"]
    assert merged["tools"][0] == version.config["tools"][0]  # the preset's tool of the same name is kept
    assert merged["messages"][0] == {"role": "system", "content": "Be brief."}
    assert reference({"model": "b/y@preset/p@3"}) == ("p", 3, "b/y")
    assert reference({"preset": "p", "model": "b/y"}) == ("p", None, "b/y")
    assert reference({"model": "b/y"}) is None


def test_without_redis_each_worker_takes_its_share_of_a_cap() -> None:
    async def scenario() -> None:
        slots = Slots(workers=2)  # one of serve --workers 2
        assert await slots.try_acquire("engine", 4) and await slots.try_acquire("engine", 4)
        assert not await slots.try_acquire("engine", 4)  # 2 of 4 here: the other worker has the other 2
        assert await slots.try_acquire("small", 1)  # a cap below the workers: at least one each
        assert not await slots.acquire("small", 1, queue=1, timeout=0.01)
        assert dict(slots.in_flight) == {"engine": 2, "small": 1}

    asyncio.run(scenario())
