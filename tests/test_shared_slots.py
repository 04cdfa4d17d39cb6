"""Concurrency caps shared through Redis (shared/slots.py): an endpoint's ``max_concurrency`` holds across
two gateways on one Redis (the shared Redis on 127.0.0.1:6379, with a key prefix of each test's own), and a
replica that died holding slots stops counting once its heartbeat is stale."""

from __future__ import annotations

import asyncio
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from routeway.config import SharedSettings
from routeway.shared.link import Link
from routeway.shared.slots import SharedSlots
from routeway.shared.throttle import STALE_SECONDS

from tests.conftest import Gateway, stop_gateway
from tests.test_shared_state import SHARED_REDIS, prefix, redis_cli, twin  # noqa: F401  (prefix: a fixture)
from tests.test_teams import WAIT, GatedUpstream, _first_done, ask, config


@pytest.fixture(scope="module")
def engine() -> Any:
    server = GatedUpstream().start()
    yield server
    server.stop()


def chat(gateway: Gateway, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gateway.api + "/chat/completions", json=body, timeout=WAIT,
                      headers={"authorization": f"Bearer {key}"})


@pytest.mark.e2e
def test_max_concurrency_holds_across_two_gateways_on_one_redis(engine: GatedUpstream, tmp_path: Path,
                                                                 prefix: str) -> None:  # noqa: F811
    path = tmp_path / "routeway.toml"
    path.write_text(config(engine.base_url) + f'\n[shared]\nredis = "{SHARED_REDIS}"\nprefix = "{prefix}"\n')
    a, b, account = twin(tmp_path, path)
    engine.close_gate()
    try:
        with ThreadPoolExecutor(3) as pool:
            try:
                first = pool.submit(chat, a, account.api_key, ask("team/capped"))  # eng-c: max_concurrency = 1
                engine.wait_in_flight("gated-c", 1)
                # through the other gateway: one waits in its queue of 1, the other is refused at once
                queued = [pool.submit(chat, b, account.api_key, ask("team/capped")) for _ in range(2)]
                finished = _first_done(queued)
                assert finished, f"no request was refused: {engine.in_flight}"
                refused = finished[0].result()
            finally:
                engine.open_gate()
            assert refused.status_code == 429, refused.text
            assert "max_concurrency" in refused.json()["error"]["message"]
            rest = [first.result(WAIT), *(f.result(WAIT) for f in queued if f is not finished[0])]
        assert [r.status_code for r in rest] == [200, 200]
        assert engine.most["gated-c"] == 1  # the engine never saw two at once, whichever gateway sent them
        # every slot was given back in Redis
        assert _eventually(lambda: held_in_redis(prefix) == 0), held_in_redis(prefix)
    finally:
        stop_gateway(a)
        stop_gateway(b)


def held_in_redis(key_prefix: str) -> int:
    names = redis_cli(6379, "--scan", "--pattern", f"{key_prefix}slots:*").split()
    return sum(int(count) for name in names for count in redis_cli(6379, "hvals", name).split())


def _eventually(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_a_dead_replicas_slots_stop_counting_and_live_ones_do() -> None:
    async def scenario() -> None:
        link = Link(SharedSettings(redis=SHARED_REDIS, prefix=f"rw-test-{secrets.token_hex(6)}:"))
        try:
            now = int((await link.client.time())[0])
            replicas = link.key("replicas")
            await link.client.zadd(replicas, {"alive": now, "dead": now - STALE_SECONDS - 5})
            await link.client.hset(link.key("slots", "engine"), mapping={"dead": 2})
            slots = SharedSlots(link, "alive")
            assert await slots.try_acquire("engine", 2)  # the dead replica's 2 no longer count
            assert await slots.try_acquire("engine", 2)
            assert not await slots.try_acquire("engine", 2)  # this replica's own 2 do
            other = SharedSlots(link, "alive-too")
            await link.client.zadd(replicas, {"alive-too": now})
            assert not await other.try_acquire("engine", 2)  # across replicas: one cap
            slots.release("engine")
            await asyncio.gather(*slots.writes)
            assert await other.acquire("engine", 2, queue=1, timeout=WAIT)
            assert await link.client.hget(link.key("slots", "engine"), "dead") is None
            assert dict(slots.in_flight) == {"engine": 1} and dict(other.in_flight) == {"engine": 1}
        finally:
            keys = [k async for k in link.client.scan_iter(match=link.prefix + "*")]
            if keys:
                await link.client.delete(*keys)
            await link.close()

    asyncio.run(scenario())


def test_while_redis_is_away_caps_are_counted_in_the_process() -> None:
    async def scenario() -> None:
        from tests.conftest import free_port

        link = Link(SharedSettings(redis=f"redis://127.0.0.1:{free_port()}/0", prefix="rw-test-away:"))
        try:
            slots = SharedSlots(link, "alone")
            assert await slots.try_acquire("engine", 1)  # nothing listens there: counted here
            assert link.degraded
            assert not await slots.try_acquire("engine", 1)
            assert not await slots.acquire("engine", 1, queue=1, timeout=0.01)
            slots.release("engine")
            assert dict(slots.in_flight) == {} and await slots.try_acquire("engine", 1)
        finally:
            await link.close()

    asyncio.run(scenario())
