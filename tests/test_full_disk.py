"""A full disk under load (issue 11, item 4): routeway refuses paid work and changes with a clear 503 before
any upstream call, ends every stream it started with [DONE], keeps the book equal to the ledger, and
recovers by itself when space returns — without a traceback per request in its log."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Account, Gateway, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream

DISK_BYTES = 16 * 1024 * 1024


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for the data folder (its log stays outside, in tmp_path). Tests run as root here and in CI."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the filesystem with one file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def chat(account: Account, stream: bool, model: str = "test/slow") -> dict[str, Any]:
    """One chat request; what came back, with a stream's data lines."""
    body = {"model": model, "messages": [{"role": "user", "content": "count the bytes"}], "max_tokens": 50,
            "stream": stream}
    headers = {"authorization": f"Bearer {account.api_key}"}
    with httpx.stream("POST", account.gateway.api + "/chat/completions", json=body, headers=headers,
                      timeout=30) as answer:
        text = "".join(answer.iter_text())
    result: dict[str, Any] = {"status": answer.status_code, "stream": stream, "text": text}
    if answer.status_code == 200 and stream:
        result["events"] = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    else:
        result["json"] = json.loads(text)
    return result


def assert_clean(result: dict[str, Any]) -> None:
    """200 (a stream ending with [DONE]) or 503 store_unavailable; never a 500."""
    if result["status"] == 503:
        assert result["json"]["error"]["metadata"]["error_type"] == "store_unavailable", result
        return
    assert result["status"] in (200, 201), result
    if result.get("events") is not None:
        assert result["events"][-1] == "[DONE]", result["text"][-500:]


def held(events: list[str]) -> bool:
    """The stream says its charge could not be recorded yet (it is held and written later)."""
    return any('"store_unavailable"' in event for event in events)


def wait_for(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def book_equals_ledger(gw: Gateway, account: Account) -> dict[str, Any]:
    state = account.state()
    assert round(state["balance"] * 1e9) == account.ledger_sum(), (state, account.ledger_sum())
    return state


def test_a_full_disk_refuses_cleanly_keeps_the_money_exact_and_recovers(
        upstream: MockUpstream, tmp_path: Path, small_disk: Path) -> None:
    gw = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url), small_disk)
    try:
        account = gw.account(credits=10)
        assert chat(account, stream=False, model="test/echo")["status"] == 200
        filler = fill(small_disk)

        # Wave 1: everything at once, before routeway knows the disk is full.
        with ThreadPoolExecutor(16) as pool:
            chats = [pool.submit(chat, account, i % 2 == 0) for i in range(12)]
            grant = pool.submit(gw.admin, "POST", f"/admin/accounts/{account.id}/credits", {"amount": 1})
            key = pool.submit(httpx.post, gw.api + "/keys", json={"name": "during"}, timeout=30,
                              headers={"authorization": f"Bearer {account.management_key}"})
            results = [c.result() for c in chats]
            changes = [grant.result(), key.result()]
        for result in results:
            assert_clean(result)
        for change in changes:
            assert change.status_code == 503, change.text
            assert change.json()["error"]["metadata"]["error_type"] == "store_unavailable"
        delivered = [r for r in results if r["status"] == 200]
        assert delivered and any(held(r["events"]) for r in delivered if r["stream"]), results

        health = httpx.get(gw.url + "/health", timeout=5)
        assert health.status_code == 503, health.text
        assert health.json()["status"] == "degraded" and "database or disk is full" in health.json()["store"]
        state = book_equals_ledger(gw, account)  # held charges are reserved, not yet in the balance
        assert state["reserved"] > 0

        # Wave 2: routeway knows; nothing reaches an upstream and nothing answers 201 unwritten.
        seen = len(upstream.requests)
        for stream in (False, True):
            refused = chat(account, stream=stream)
            assert refused["status"] == 503 and refused["json"]["error"]["metadata"]["error_type"] == "store_unavailable"
        assert len(upstream.requests) == seen
        for method, path, body in (("POST", f"/admin/accounts/{account.id}/credits", {"amount": 1}),
                                   ("POST", "/admin/accounts", {"name": "new", "credits": 1}),
                                   ("POST", f"/admin/accounts/{account.id}/keys", {"name": "new"})):
            answer = gw.admin(method, path, body)
            assert answer.status_code == 503 and answer.json()["error"]["metadata"]["error_type"] == "store_unavailable"
        manage = {"authorization": f"Bearer {account.management_key}"}
        api_key = httpx.get(gw.api + "/keys", headers=manage).json()["data"][0]
        for method, body in (("PATCH", {"limit": 1, "disabled": True}), ("DELETE", None)):
            answer = httpx.request(method, gw.api + f"/keys/{api_key['hash']}", json=body, headers=manage, timeout=30)
            assert answer.status_code == 503 and answer.json()["error"]["metadata"]["error_type"] == "store_unavailable"
        assert httpx.get(gw.api + "/keys", headers=manage).json()["data"][0] == api_key  # nothing changed
        book_equals_ledger(gw, account)

        # Space returns: routeway recovers by itself, lands the held charges, and serves again.
        filler.unlink()
        assert wait_for(lambda: httpx.get(gw.url + "/health", timeout=5).status_code == 200, 10)
        assert wait_for(lambda: "held_settlements" not in httpx.get(gw.url + "/health", timeout=5).json(), 10)
        after = [chat(account, stream=s, model="test/echo") for s in (False, True)]
        assert all(r["status"] == 200 and not held(r.get("events") or []) for r in after), after
        assert gw.admin("POST", f"/admin/accounts/{account.id}/credits", {"amount": 1}).status_code == 201
        state = book_equals_ledger(gw, account)
        assert state["reserved"] == 0
        generations = account.generations()
        assert len(generations) == 1 + len(delivered) + len(after)  # every delivered answer has its record
        charged = gw.rows("SELECT -COALESCE(SUM(amount_nano), 0) FROM ledger WHERE kind = 'charge' AND account_id = ?",
                          (account.id,))[0][0]
        assert charged == sum(g[2] for g in generations) and round(state["total_usage"] * 1e9) == charged

        log = next(tmp_path.glob("routeway-*.log")).read_text()
        assert "Traceback" not in log, log[-3000:]
        assert log.count("the store cannot write") == 1 and log.count("the store can write again") == 1, log
    finally:
        stop_gateway(gw)

    again = start_gateway(tmp_path / "routeway.toml", small_disk)  # the rebuilt book is the same book
    try:
        restarted = Account(again, account.id, account.management_key, account.api_key).state()
        assert {k: restarted[k] for k in ("total_credits", "total_usage", "balance")} == \
               {k: state[k] for k in ("total_credits", "total_usage", "balance")}
        assert round(restarted["balance"] * 1e9) == account.ledger_sum()
    finally:
        stop_gateway(again)
