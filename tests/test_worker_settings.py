"""``serve --workers 2`` on one SQLite store: an account's response-cache default and its observability
destinations, changed through whichever worker took the request, are in force on both within a second
(they ride the change log, ledger/follow.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway, write_config
from tests.support.otlp_receiver import Receiver
from tests.support.upstream import MockUpstream

pytestmark = pytest.mark.e2e


@pytest.fixture()
def workers_gateway(upstream: MockUpstream, tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url), tmp_path / "data",
                       args=("--workers", "2"))
    yield gw
    stop_gateway(gw)


def chats(gw: Gateway, api_key: str, text: str, count: int) -> list[httpx.Response]:
    """Each on a connection of its own, so the kernel hands each to either worker."""
    answers = []
    for _ in range(count):
        with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            answer = client.post(gw.api + "/chat/completions", headers={"authorization": f"Bearer {api_key}"},
                                 json={"model": "test/echo", "messages": [{"role": "user", "content": text}]})
        assert answer.status_code == 200, answer.text
        answers.append(answer)
    return answers


def test_settings_changed_through_one_worker_are_in_force_on_both(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    account = gw.account(credits=1.0)
    on = gw.admin("PUT", f"/admin/accounts/{account.id}/response-cache", {"enabled": True, "ttl_seconds": 600})
    assert on.status_code == 200, on.text
    time.sleep(1.0)
    text = f"cache me {uuid.uuid4().hex}"
    statuses: list[Any] = [a.headers.get("x-openrouter-cache-status") for a in chats(gw, account.api_key, text, 21)]
    assert statuses == ["MISS"] + ["HIT"] * 20  # both workers use the default (and share the stored entry)
    assert gw.admin("PUT", f"/admin/accounts/{account.id}/response-cache", {"enabled": False}).status_code == 200
    time.sleep(1.0)
    assert not any("x-openrouter-cache-status" in a.headers for a in chats(gw, account.api_key, text, 20))

    receiver = Receiver().start()
    try:
        made = httpx.post(gw.api + "/observability/destinations", timeout=30,
                          headers={"authorization": f"Bearer {account.management_key}"},
                          json={"name": "hook", "type": "webhook", "config": {"endpoint": receiver.root + "/hook"}})
        assert made.status_code == 201, made.text
        time.sleep(1.0)
        generations = [a.json()["id"].encode() for a in chats(gw, account.api_key, "broadcast me", 20)]
        receiver.wait_for(lambda: all(any(p == "/hook" and g in b for p, _, b in receiver.bodies) for g in generations),
                          "every generation at the destination, whichever worker served it")
    finally:
        receiver.stop()
