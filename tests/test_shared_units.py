"""The Redis-shared state's parts, without a server: configuration, the rate-limit script's windows
(on the shared Redis at 127.0.0.1:6379, keys under a prefix of each test's own) and the fallback to
per-process counting when Redis cannot be reached."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from routeway.config import ConfigError, LimitSettings, SharedSettings, load_settings
from routeway.errors import APIError
from routeway.ledger.book import AccountState, KeyState
from routeway.routing.health import ERROR, OK, HealthSettings
from routeway.shared.health import SharedHealth
from routeway.shared.link import Link
from routeway.shared.throttle import SharedThrottle

KEY = KeyState(hash="h", account_id="a", name="n", label="l", is_management=False, created_at=0)


def test_shared_redis_comes_from_the_config_or_the_environment(tmp_path: Path) -> None:
    assert load_settings(None, env={}, default_model=False).shared.redis is None
    from_env = load_settings(None, env={"ROUTEWAY_REDIS_URL": "redis://r:6379/1"}, default_model=False)
    assert from_env.shared.redis == "redis://r:6379/1" and from_env.shared.prefix == "routeway:"
    config = tmp_path / "routeway.toml"
    config.write_text('[shared]\nredis = "redis://s:6379/0"\nprefix = "a:"\ntimeout_seconds = 0.5\n')
    settings = load_settings(config, env={"ROUTEWAY_REDIS_URL": "redis://r:6379/1"}, default_model=False)
    assert settings.shared == SharedSettings(redis="redis://s:6379/0", prefix="a:", timeout_seconds=0.5)


@pytest.mark.parametrize("table, message", [
    ('redis = "http://r:6379"', "must be a URL"),
    ("redis = 6379", "must be a URL"),
    ("timeout_seconds = 0", "between 0 and 10"),
    ("timeout_seconds = true", "between 0 and 10"),
    ('rediss = "redis://r"', "unknown settings"),
])
def test_a_wrong_shared_setting_is_refused_by_name(tmp_path: Path, table: str, message: str) -> None:
    config = tmp_path / "routeway.toml"
    config.write_text(f"[shared]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env={}, default_model=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _with_link(url: str, test: Callable[[Link], Awaitable[None]]) -> None:
    link = Link(SharedSettings(redis=url, prefix=f"rw-test-{secrets.token_hex(6)}:"))
    try:
        await test(link)
    finally:
        if not link.degraded:
            keys = [key async for key in link.client.scan_iter(link.prefix + "*")]
            if keys:
                await link.client.delete(*keys)
        await link.close()


def run(url: str, test: Callable[[Link], Awaitable[None]]) -> None:
    asyncio.run(_with_link(url, test))


async def refused(check: Awaitable[None]) -> APIError:
    try:
        await check
    except APIError as error:
        return error
    raise AssertionError("not refused")


def test_every_window_of_a_limit_is_taken_or_none_and_two_throttles_share_them() -> None:
    async def test(link: Link) -> None:
        settings = LimitSettings(key_requests="3/minute;4/hour")
        one, two = SharedThrottle(settings, link), SharedThrottle(settings, link)  # two replicas
        await one.check_key(KEY)
        await two.check_key(KEY)
        await one.check_key(KEY)
        error = await refused(two.check_key(KEY))
        assert error.status == 429 and "3 per 1 minute" in error.message
        assert 1 <= int(error.headers["retry-after"]) <= 60 and error.headers["x-ratelimit-limit"] == "3"
        # the refused request did not use up the hour: it still has one left
        hour = [key async for key in link.client.scan_iter(link.prefix + "rl:key:h:*hour*")]
        assert [int(await link.client.get(key)) for key in hour] == [3]
        assert not link.degraded and not one.storage.storage  # nothing was counted in-process

    run("redis://127.0.0.1:6379/0", test)


def test_free_daily_requests_left_are_read_from_redis() -> None:
    async def test(link: Link) -> None:
        throttle = SharedThrottle(LimitSettings(free_requests="", free_daily=3), link)
        account = AccountState(id="acct", name="x", created_at=0)
        await throttle.check_free(account)
        described = await SharedThrottle(LimitSettings(free_requests="", free_daily=3), link).describe(account)
        assert described["free_model_daily_requests"] == {"limit": 3, "remaining": 2, "used": 1}

    run("redis://127.0.0.1:6379/0", test)


def test_without_redis_limits_hold_per_process_and_nothing_waits_on_it() -> None:
    async def test(link: Link) -> None:
        throttle = SharedThrottle(LimitSettings(key_requests="2/minute", key_concurrent_streams=1), link)
        await throttle.check_key(KEY)
        assert link.degraded and link.failures == 1 and link.degraded_spells == 1
        await throttle.check_key(KEY)
        assert (await refused(throttle.check_key(KEY))).status == 429  # counted in this process
        await throttle.open_stream(KEY)
        assert (await refused(throttle.open_stream(KEY))).status == 429
        await throttle.close_stream(KEY)
        await throttle.open_stream(KEY)
        assert link.failures == 1  # degraded: no further call was even tried

    run(f"redis://127.0.0.1:{closed_port()}/0", test)


def test_health_outcomes_and_breakers_reach_the_other_replica() -> None:
    async def test(link: Link) -> None:
        settings = HealthSettings(breaker_threshold=3, breaker_cooldown=60)
        a, b = SharedHealth(settings, link), SharedHealth(settings, link)
        await a.begin()
        await b.begin()
        now = time.time()
        b.of("p/m").record(OK, now, ttft_ms=100.0, tokens_per_s=50.0)
        for _ in range(3):
            a.of("p/m").record(ERROR, now)
        a.of("p/m").retry_at = now + 30
        assert a.of("p/m").breaker.state == "open" and b.of("p/m").breaker.state == "closed"
        await a.sync()
        await b.sync()
        await a.sync()
        merged = b.of("p/m")
        assert merged.breaker.state == "open" and merged.breaker.opened_at == a.of("p/m").breaker.opened_at
        assert merged.counts(3600, time.time()) == (1, 3, 0) == a.of("p/m").counts(3600, time.time())
        assert merged.retry_at == a.of("p/m").retry_at
        assert a.of("p/m").percentiles(1, 60, time.time()) == {"p50": 100.0, "p75": 100.0, "p90": 100.0,
                                                                "p99": 100.0}

    run("redis://127.0.0.1:6379/0", test)



def test_without_redis_sessions_live_in_this_process() -> None:
    from routeway.shared.sessions import RedisSessionStore
    from routeway.web.sessions import Session

    async def test(link: Link) -> None:
        store = RedisSessionStore(link, per_key=1)
        first = Session(id="s1", csrf="c", expires=time.time() + 60, key_hash="k")
        assert await store.add(first) == [] and link.degraded
        assert await store.get("s1") is first
        first.flashes.append(("ok", "saved"))
        await store.save(first)  # the object itself is what this process keeps
        second = Session(id="s2", csrf="c", expires=time.time() + 60, key_hash="k")
        assert await store.add(second) == [first]  # the per-key cap holds here too
        assert await store.remove("s2") is second and await store.get("s2") is None
        assert link.failures == 1

    run(f"redis://127.0.0.1:{closed_port()}/0", test)
