"""Changes that reach every replica: two `routeway serve` replicas on one PostgreSQL database, changing keys
at the same instant, never answer 500 and each sees every change the other made; an account's response-cache
default and its observability destinations, changed through one, are in force on the other within a second."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_gateway, stop_gateway, write_config
from tests.support.otlp_receiver import Receiver
from tests.support.postgres import ThrowawayDatabase, available, rows
from tests.support.upstream import MockUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not available(), reason="no PostgreSQL on 127.0.0.1:5432")]


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
            limit = round(0.01 * (1 + i // len(keys)), 2)
            answer = httpx.patch(f"{replica.api}/keys/{key}", json={"limit": limit}, headers=management, timeout=30)
            return answer.status_code, answer.text

        def grant(i: int) -> tuple[int, str]:  # account changes, at the same instants as the key changes
            answer = replicas[i % 2].admin("POST", f"/admin/accounts/{account.id}/credits", {"amount": 0.001})
            return answer.status_code, answer.text

        with ThreadPoolExecutor(32) as pool:
            changes = [pool.submit(change, i) for i in range(len(keys) * rounds)]
            grants = [pool.submit(grant, i) for i in range(rounds)]
            answers = [future.result() for future in changes + grants]
        assert Counter(status for status, _ in answers) == {200: len(keys) * rounds, 201: rounds}, [
            text for status, text in answers if status != 200][:3]

        # every change is in the log exactly once, and both replicas follow it to the state the store holds
        assert rows(url, "SELECT COUNT(*) FROM store_changes WHERE kind = 'key'"
                    " AND subject = ANY(%s)", (keys,)) == [
            (len(keys) * (rounds + 1),)]  # each key's creation and its changes
        stored = dict(rows(url, "SELECT hash, limit_nano FROM api_keys WHERE hash = ANY(%s)", (keys,)))
        time.sleep(1.0)
        credits = [r.admin("GET", f"/admin/accounts/{account.id}").json()["data"]["total_credits"] for r in replicas]
        assert credits == [pytest.approx(1.0 + 0.001 * rounds)] * 2  # every grant, seen by both
        for replica in replicas:
            for key in keys:
                seen = httpx.get(f"{replica.api}/keys/{key}", headers=management, timeout=10).json()["data"]
                assert round(seen["limit"] * 1e9) == stored[key], (replica.url, seen)
    finally:
        for replica in replicas:
            stop_gateway(replica)


def test_cache_defaults_and_destinations_changed_through_one_replica_are_in_force_on_the_other(
        upstream: MockUpstream, database: ThrowawayDatabase, tmp_path: Path) -> None:
    url = database.url_for(str(tmp_path))
    config = write_config(tmp_path / "routeway.toml", upstream.base_url)
    first, second = (start_gateway(config, tmp_path / name, {"ROUTEWAY_DATABASE_URL": url}) for name in ("a", "b"))
    receiver = Receiver().start()
    try:
        account = first.account(credits=1.0)
        management = {"authorization": f"Bearer {account.management_key}"}

        def chat(text: str) -> httpx.Response:
            answer = httpx.post(second.api + "/chat/completions", timeout=30,
                                json={"model": "test/echo", "messages": [{"role": "user", "content": text}]},
                                headers={"authorization": f"Bearer {account.api_key}"})
            assert answer.status_code == 200, answer.text
            return answer

        # the account's response-cache default, turned on and off through the first replica
        on = first.admin("PUT", f"/admin/accounts/{account.id}/response-cache", {"enabled": True, "ttl_seconds": 600})
        assert on.status_code == 200, on.text
        time.sleep(1.0)
        text = f"cache me {uuid.uuid4().hex}"
        assert [chat(text).headers.get("x-openrouter-cache-status") for _ in range(2)] == ["MISS", "HIT"]
        assert first.admin("PUT", f"/admin/accounts/{account.id}/response-cache", {"enabled": False}).status_code == 200
        time.sleep(1.0)
        assert "x-openrouter-cache-status" not in chat(text).headers

        # a destination created through the first replica gets the second's generations
        made = httpx.post(first.api + "/observability/destinations", headers=management, timeout=30, json={
            "name": "hook", "type": "webhook", "config": {"endpoint": receiver.root + "/hook"}})
        assert made.status_code == 201, made.text
        destination = f"{second.api}/observability/destinations/{made.json()['data']['id']}"
        time.sleep(1.0)
        assert httpx.get(destination, headers=management).json()["data"]["status"] is not None  # in force there
        generation = chat("broadcast me").json()["id"].encode()
        receiver.wait_for(lambda: any(p == "/hook" and generation in b for p, _, b in receiver.bodies),
                          "the second replica's generation at the destination")
        # paused through the first: the second stops sending to it
        paused = httpx.patch(destination.replace(second.api, first.api), headers=management, json={"enabled": False})
        assert paused.status_code == 200, paused.text
        time.sleep(1.0)
        assert httpx.get(destination, headers=management).json()["data"]["status"] is None
    finally:
        receiver.stop()
        stop_gateway(first)
        stop_gateway(second)
