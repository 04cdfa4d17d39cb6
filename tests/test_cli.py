"""The operator CLI, run as a command against a running routeway."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx

from tests.conftest import ADMIN_KEY, Gateway


def routeway(gateway: Gateway, *args: str, admin_key: str = ADMIN_KEY) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ROUTEWAY_ADMIN_KEY": admin_key, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "routeway", args[0], "--url", gateway.url, *args[1:]],
                          capture_output=True, text=True, env=env, timeout=60)


def test_operator_onboards_an_account_from_the_cli(gateway: Gateway) -> None:
    created = routeway(gateway, "accounts", "create", "cli-team", "--credits", "2.5")
    assert created.returncode == 0, created.stderr
    account_id = re.search(r"account (acct-\w+)", created.stdout).group(1)
    management = re.search(r"(sk-rw-v1-\w+)", created.stdout).group(1)
    api = routeway(gateway, "keys", "create", account_id, "--api", "--name", "ci")
    api_key = re.search(r"(sk-rw-v1-\w+)", api.stdout).group(1)
    reply = httpx.post(gateway.api + "/chat/completions", headers={"authorization": f"Bearer {api_key}"},
                       json={"model": "test/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    assert reply.status_code == 200
    granted = routeway(gateway, "accounts", "grant", account_id, "1.5", "--note", "top-up")
    assert granted.returncode == 0 and "balance" in granted.stdout
    credits = httpx.get(gateway.api + "/credits", headers={"authorization": f"Bearer {management}"}).json()["data"]
    assert credits["total_credits"] == 4.0 and credits["total_usage"] > 0
    listing = routeway(gateway, "accounts", "list")
    assert account_id in listing.stdout and "cli-team" in listing.stdout
    keys = routeway(gateway, "keys", "list", account_id)
    assert "ci" in keys.stdout and "management" in keys.stdout
    ledger = gateway.admin("GET", f"/admin/accounts/{account_id}/ledger").json()["data"]
    assert [e["kind"] for e in ledger] == ["grant", "charge", "grant"]
    assert [e["note"] for e in ledger][2] == "top-up"


def test_cli_errors_say_what_to_do(gateway: Gateway) -> None:
    wrong = routeway(gateway, "accounts", "list", admin_key="nope")
    assert wrong.returncode == 1 and "Invalid operator key" in wrong.stderr and "Traceback" not in wrong.stderr
    down = subprocess.run([sys.executable, "-m", "routeway", "accounts", "--url", "http://127.0.0.1:9", "list"],
                          capture_output=True, text=True, env={**os.environ, "ROUTEWAY_ADMIN_KEY": "x"}, timeout=60)
    assert down.returncode == 1 and "Is `routeway serve` running?" in down.stderr
