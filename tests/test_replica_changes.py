"""Changes that reach every replica: two `routeway serve` replicas on one PostgreSQL database, changing keys
at the same instant, never answer 500 and each sees every change the other made."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import start_gateway, stop_gateway, write_config
from tests.support.postgres import ThrowawayDatabase, available
from tests.support.upstream import MockUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not available(), reason="no PostgreSQL on 127.0.0.1:5432")]


@pytest.fixture(scope="module")
def database() -> Iterator[ThrowawayDatabase]:
    throwaway = ThrowawayDatabase()
    yield throwaway
    throwaway.drop()


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_key_changes_at_once_through_two_replicas_all_succeed_and_reach_both(
        upstream: MockUpstream, database: ThrowawayDatabase, tmp_path: Path) -> None:
    url = database.url_for(str(tmp_path))
    config = write_config(tmp_path / "routeway.toml", upstream.base_url)
    replicas = [start_gateway(config, tmp_path / name, {"ROUTEWAY_DATABASE_URL": url}) for name in ("a", "b")]
    try:
        account = replicas[0].account(credits=1.0)
        management = {"authorization": f"Bearer {account.management_key}"}
        keys = [replicas[0].admin("POST", f"/admin/accounts/{account.id}/keys",
                                  {"name": f"k{i}", "management": False}).json()["data"]["hash"] for i in range(8)]
        rounds = 25

        def change(i: int) -> tuple[int, str]:
            replica, key = replicas[i % 2], keys[i % len(keys)]
            limit = round(0.01 * (1 + i // len(keys)), 2)  # the last round sets the highest limit
            answer = httpx.patch(f"{replica.api}/keys/{key}", json={"limit": limit}, headers=management, timeout=30)
            return answer.status_code, answer.text

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(change, range(len(keys) * rounds)))
        assert Counter(status for status, _ in answers) == {200: len(keys) * rounds}, [
            text for status, text in answers if status != 200][:3]

        # every change is in the log exactly once, and both replicas follow it to the state the store holds
        assert rows(url, "SELECT COUNT(*) FROM store_changes WHERE kind = 'key'"
                    " AND subject = ANY(%s)", (keys,)) == [
            (len(keys) * (rounds + 1),)]  # each key's creation and its changes
        stored = dict(rows(url, "SELECT hash, limit_nano FROM api_keys WHERE hash = ANY(%s)", (keys,)))
        time.sleep(1.0)
        for replica in replicas:
            for key in keys:
                seen = httpx.get(f"{replica.api}/keys/{key}", headers=management, timeout=10).json()["data"]
                assert round(seen["limit"] * 1e9) == stored[key], (replica.url, seen)
    finally:
        for replica in replicas:
            stop_gateway(replica)
