"""The response cache in Redis (`[shared] redis`), shared by two gateways: an answer one of them made is
a hit on the other. The two replicas share their accounts as they would through a shared store: the
second starts from a copy of the first's database. A Redis that is down makes misses, never failures."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import Account, Gateway, free_port, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream

REDIS_URL = "redis://127.0.0.1:6379/0"
ON = {"X-OpenRouter-Cache": "true"}


@pytest.fixture()
def prefix() -> Iterator[str]:
    mine = f"routeway-test-cache-{uuid.uuid4().hex}:"
    yield mine
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=mine + "*"):
        client.delete(key)
    client.close()


def _config(path: Path, upstream: MockUpstream, redis_url: str, prefix: str) -> Path:
    return write_config(path, upstream.base_url, f'\n[shared]\nredis = "{redis_url}"\n\n[cache]\nredis_prefix = "{prefix}"\n')


def test_two_gateways_share_the_cache_through_redis(upstream: MockUpstream, tmp_path: Path, prefix: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "data").mkdir(parents=True)
    first = start_gateway(_config(tmp_path / "a" / "routeway.toml", upstream, REDIS_URL, prefix), tmp_path / "a" / "data")
    second: Gateway | None = None
    try:
        account = first.account()
        source = sqlite3.connect(first.data_dir / "routeway.sqlite3")
        copy = sqlite3.connect(tmp_path / "b" / "data" / "routeway.sqlite3")
        source.backup(copy)
        source.close()
        copy.close()
        second = start_gateway(_config(tmp_path / "b" / "routeway.toml", upstream, REDIS_URL, prefix),
                               tmp_path / "b" / "data")
        replica = Account(second, account.id, account.management_key, account.api_key)
        body = {"model": "test/echo", "messages": [{"role": "user", "content": f"shared {uuid.uuid4().hex}"}]}
        made = account.chat(body, headers=ON)
        assert made.headers["x-openrouter-cache-status"] == "MISS"
        calls = len(upstream.requests)
        hit = replica.chat(body, headers=ON)
        assert hit.status_code == 200 and hit.headers["x-openrouter-cache-status"] == "HIT"
        assert hit.headers["x-openrouter-cache-source-id"] == made.json()["id"]
        assert hit.json()["choices"] == made.json()["choices"] and hit.json()["usage"]["cost"] == 0
        assert len(upstream.requests) == calls
        assert replica.generations()[-1][2] == 0  # recorded, free, on the replica that answered
        keys = redis.Redis.from_url(REDIS_URL).keys(prefix + "*")
        assert len(keys) == 1
    finally:
        stop_gateway(first)
        if second is not None:
            stop_gateway(second)


def test_a_redis_that_is_down_makes_misses_not_failures(upstream: MockUpstream, tmp_path: Path, prefix: str) -> None:
    gateway = start_gateway(_config(tmp_path / "routeway.toml", upstream, f"redis://127.0.0.1:{free_port()}/0", prefix),
                            tmp_path / "data")
    try:
        account = gateway.account()
        body = {"model": "test/echo", "messages": [{"role": "user", "content": "nobody keeps this"}]}
        for _ in range(2):
            answer = account.chat(body, headers=ON)
            assert answer.status_code == 200 and answer.headers["x-openrouter-cache-status"] == "MISS"
            assert answer.json()["choices"][0]["message"]["content"] == "echo: nobody keeps this"
    finally:
        stop_gateway(gateway)
