"""Dashboard sessions cannot be exhausted by one tenant: a key's newest sign-in ends its oldest session
past the per-key cap (20), everyone else keeps signing in, the whole store sheds its oldest sessions
instead of refusing, and sign-in attempts are rate limited per key and, counting failures, per client address (a 429 page)."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from routeway.web.session_store import PER_KEY, MemorySessionStore, SessionStore
from routeway.web.sessions import Session

from tests.conftest import ADMIN_KEY, Gateway, start_gateway, stop_gateway, write_config
from tests.support.dashboard_client import csrf_token
from tests.support.upstream import MockUpstream
from tests.test_resource_limits import rss_mb


def _gateway(upstream: MockUpstream, root: Path, limits: str) -> Gateway:
    config = write_config(root / "routeway.toml", upstream.base_url, f"\n[limits]\n{limits}\n")
    return start_gateway(config, root / "data")


@pytest.fixture()
def unlimited(upstream: MockUpstream, tmp_path: Path) -> Iterator[Gateway]:
    gw = _gateway(upstream, tmp_path, 'signin_failures_per_address = ""\nsignin_per_key = ""')
    yield gw
    stop_gateway(gw)


@pytest.fixture()
def limited(upstream: MockUpstream, tmp_path: Path) -> Iterator[Gateway]:
    gw = _gateway(upstream, tmp_path, 'signin_failures_per_address = "8/minute"\nsignin_per_key = "5/minute"')
    yield gw
    stop_gateway(gw)


def _sign_in(gw: Gateway, key: str, address: str = "127.0.0.1") -> tuple[httpx.Response, httpx.Client]:
    """A sign-in from a new browser at ``address`` (a loopback address of its own); the client keeps the cookie."""
    client = httpx.Client(base_url=gw.url, timeout=30, follow_redirects=False,
                          transport=httpx.HTTPTransport(local_address=address))
    answer = client.post("/signin", data={"csrf": csrf_token(client), "key": key, "next": "/activity"})
    return answer, client


def _still_signed_in(client: httpx.Client) -> bool:
    page = client.get("/activity")
    assert page.status_code in (200, 303), page.text
    return page.status_code == 200


@pytest.mark.e2e  # its fixtures start the gateway through _gateway, which the marker's source scan cannot see
def test_a_keys_newest_sign_in_ends_its_oldest_session_and_others_sign_in_as_usual(unlimited: Gateway) -> None:
    tenant, other = unlimited.account(name="tenant"), unlimited.account(name="other")
    clients = []
    try:
        started, before = time.monotonic(), rss_mb(unlimited)
        for i in range(PER_KEY + 5):
            answer, client = _sign_in(unlimited, tenant.management_key)
            assert answer.status_code == 303, answer.text
            clients.append(client)
            if i == 0:  # the first session opens the playground, which mints it an API key
                csrf = re.search(r'data-csrf="([^"]+)"', client.get("/keys").text).group(1)  # type: ignore[union-attr]
                playground_key = client.post("/playground/key", headers={"x-csrf-token": csrf}).json()["key"]
                assert tenant.chat({"model": "test/echo", "messages": [{"role": "user", "content": "hi"}],
                                    "max_tokens": 5}, key=playground_key).status_code == 200
        alive = [_still_signed_in(client) for client in clients]
        assert alive == [False] * 5 + [True] * PER_KEY  # the oldest five were pushed out, in order
        # the pushed-out session's playground key went with it
        assert tenant.chat({"model": "test/echo", "messages": [{"role": "user", "content": "hi"}],
                            "max_tokens": 5}, key=playground_key).status_code == 401
        probe_started = time.monotonic()
        for key in (other.management_key, ADMIN_KEY):
            answer, client = _sign_in(unlimited, key)
            clients.append(client)
            assert answer.status_code == 303 and _still_signed_in(client), answer.text
        print(f"\n[{PER_KEY + 5} sign-ins by one key in {time.monotonic() - started:.1f} s] probe sign-in"
              f" {(time.monotonic() - probe_started) * 500:.1f} ms each, routeway RSS {before:.1f} -> {rss_mb(unlimited):.1f} MB")
    finally:
        for client in clients:
            client.close()


@pytest.mark.e2e
def test_sign_in_attempts_are_rate_limited_per_key_and_per_address(limited: Gateway) -> None:
    tenant, other = limited.account(name="tenant"), limited.account(name="other")
    clients = []
    try:
        for _ in range(5):  # the key's window: 5 a minute
            answer, client = _sign_in(limited, tenant.management_key, "127.0.0.2")
            clients.append(client)
            assert answer.status_code == 303, answer.text
        answer, client = _sign_in(limited, tenant.management_key, "127.0.0.3")  # from anywhere
        clients.append(client)
        assert answer.status_code == 429 and "text/html" in answer.headers["content-type"]
        assert "Rate limit exceeded for sign-ins with this key" in answer.text
        assert int(answer.headers["retry-after"]) >= 1
        # another key, from the same address too, is not affected: good sign-ins do not use up the address
        for address in ("127.0.0.4", "127.0.0.2"):
            answer, client = _sign_in(limited, other.management_key, address)
            clients.append(client)
            assert answer.status_code == 303, answer.text
        # one address guessing keys: its window (8 a minute) closes, for a valid key too, and only for it
        for attempt in range(8):
            answer, client = _sign_in(limited, f"sk-rw-v1-guess-{attempt}", "127.0.0.5")
            clients.append(client)
            assert answer.status_code == 401, answer.text
        answer, client = _sign_in(limited, other.management_key, "127.0.0.5")
        clients.append(client)
        assert answer.status_code == 429 and "failed sign-ins from this address" in answer.text
        answer, client = _sign_in(limited, ADMIN_KEY, "127.0.0.6")
        clients.append(client)
        assert answer.status_code == 303, answer.text
    finally:
        for client in clients:
            client.close()


def _session(sid: str, key: str | None = None, operator: bool = False) -> Session:
    return Session(id=sid, csrf="c", expires=time.time() + 60, key_hash=key, operator=operator)


@pytest.mark.parametrize("where", ["memory", "redis"])
def test_store_overflow_sheds_the_oldest_sessions_and_anonymous_ones_only_push_out_each_other(where: str) -> None:
    """Unit test of the session stores: caps per key, on signed-in sessions, on anonymous ones; the same
    for the in-process store and the one in Redis (the shared one at 127.0.0.1:6379, keys of its own)."""
    asyncio.run(_overflow(where))


async def _overflow(where: str) -> None:
    caps = {"per_key": 3, "max_signed_in": 5, "max_anonymous": 2}
    store: SessionStore
    if where == "memory":
        store = MemorySessionStore(**caps)
    else:
        from routeway.config import SharedSettings
        from routeway.shared.link import Link
        from routeway.shared.sessions import RedisSessionStore

        link = Link(SharedSettings(redis="redis://127.0.0.1:6379/0", prefix=f"rw-test-{secrets.token_hex(6)}:"))
        store = RedisSessionStore(link, **caps)
    try:
        await _shed(store)
    finally:
        if where == "redis":
            keys = [key async for key in link.client.scan_iter(link.prefix + "*")]
            if keys:
                await link.client.delete(*keys)
            assert not link.degraded
            await link.close()


async def _shed(store: SessionStore) -> None:
    evicted = [s.id for i in range(4) for s in await store.add(_session(f"a{i}", key="k1"))]
    assert evicted == ["a0"] and await store.get("a0") is None and await store.get("a3") is not None
    evicted = [s.id for i in range(3) for s in await store.add(_session(f"b{i}", key=f"k{i + 2}"))]
    assert evicted == ["a1"]  # five signed in at most: the oldest of all goes, whoever's it was
    for i in range(100):
        await store.add(_session(f"anon{i}"))
    assert await store.get("anon99") and await store.get("anon98") and not await store.get("anon97")
    for sid in ("a2", "a3", "b0", "b1", "b2"):  # untouched by the anonymous flood
        assert await store.get(sid) is not None
    assert await store.add(_session("op", operator=True)) and await store.get("op") is not None
    assert await store.remove("op") is not None and await store.get("op") is None
