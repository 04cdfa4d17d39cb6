"""The fault soak: healthy and failing upstreams mixed at a steady rate across many keys and accounts.

Upstream faults: 500s, 429s, resets, hangs, lying usage (huge, negative, garbled), error bodies that echo the
provider key, truncated and broken streams; clients that leave mid-stream. At the end every request was
answered or failed cleanly, the book equals the ledger to the nano-dollar (also after a restart), no charge
exceeds what its request could cost, nobody went below zero or past a key limit, and the provider key
appears in no response, record or log line. Figures go to ``test-artifacts/soak.json``.

``ROUTEWAY_SOAK_SECONDS`` (default 40) and ``ROUTEWAY_SOAK_RATE`` (requests a second, default 20) size it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, start_gateway, stop_gateway
from tests.support.upstream import MockUpstream

SECRET = "sk-up-soak-" + "7f3a9c" * 8
SECONDS = float(os.environ.get("ROUTEWAY_SOAK_SECONDS", "40"))
RATE = float(os.environ.get("ROUTEWAY_SOAK_RATE", "20"))
PROMPT_NANO_PER_TOKEN = 1_000  # $1 per 1M tokens
COMPLETION_NANO_PER_TOKEN = 2_000  # $2 per 1M tokens
CLEAN_STATUSES = {200, 400, 402, 408, 429, 502, 503}

# model -> weight; every model is priced $1 / $2 per 1M tokens
MIX = {
    "soak/echo": 30, "soak/fallback": 8, "soak/fail-500": 5, "soak/rate-limited": 4, "soak/reset": 4,
    "soak/hang": 2, "soak/huge-usage": 8, "soak/negative-usage": 7, "soak/garbled-usage": 6, "soak/echo-auth": 8,
    "soak/truncated": 4, "soak/midstream-error": 4, "soak/bad-sse": 2, "soak/no-usage": 4, "soak/slow-stream": 2,
}
PLANS = {"soak/fallback": ["fail-500#soak", "echo#soak-b"], "soak/echo-auth": ["echo-auth", "echo-auth#b"]}


def soak_config(path: Path, upstream_url: str) -> Path:
    lines = ["[server]", "keepalive_seconds = 0.5", "max_body_bytes = 65536", ""]
    for name in ("soak", "soak-b"):
        lines += ["[[providers]]", f'name = "{name}"', 'kind = "openai"', f'base_url = "{upstream_url}"',
                  'api_key_env = "SOAK_UPSTREAM_KEY"', "[providers.timeouts]", "first_byte = 1.5", "idle = 1.5",
                  "total = 10", ""]
    for model in MIX:
        behaviours = PLANS.get(model, [model.split("/", 1)[1]])
        lines += ["[[models]]", f'id = "{model}"', "context_length = 8192", 'prompt_price = "1.00"',
                  'completion_price = "2.00"', 'supported_parameters = ["max_tokens"]', ""]
        for i, behaviour in enumerate(behaviours):
            lines += ["[[endpoints]]", f'model = "{model}"', f'provider = "{"soak-b" if i else "soak"}"',
                      f'upstream_model = "{behaviour}"', "max_output = 1000", ""]
    path.write_text("\n".join(lines))
    return path


@dataclass
class Outcome:
    model: str
    stream: bool
    status: int
    body: bytes
    headers: str
    body_bytes: int
    max_tokens: int
    generation_id: str | None = None
    left_early: bool = False
    problems: list[str] = field(default_factory=list)


def admin(gateway: Any, method: str, path: str, body: Any = None) -> Any:
    reply = httpx.request(method, gateway.api + path, json=body, timeout=30,
                          headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


def make_tenants(gateway: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """Three accounts (rich, modest, nearly empty) with four API keys each, some under small limits."""
    accounts, keys = [], []
    for name, credits in (("rich", 50.0), ("modest", 0.4), ("poor", 0.004)):
        account_id = admin(gateway, "POST", "/admin/accounts", {"name": name, "credits": credits})["data"]["id"]
        accounts.append(account_id)
        for i, limit in enumerate((None, None, 0.05, 0.002)):
            body: dict[str, Any] = {"name": f"{name}-{i}", "management": False}
            if limit is not None:
                body.update(limit=limit, limit_reset="daily")
            keys.append((account_id, admin(gateway, "POST", f"/admin/accounts/{account_id}/keys", body)["key"]))
    return accounts, keys


async def one_request(client: httpx.AsyncClient, rng: random.Random, keys: list[tuple[str, str]]) -> Outcome:
    model = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    stream, max_tokens = rng.random() < 0.5, rng.randint(1, 200)
    leave = stream and rng.random() < 0.1
    words = " ".join(rng.choice(("alpha", "beta", "gamma", "delta")) for _ in range(rng.randint(1, 30)))
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": words}], "stream": stream,
                       "max_tokens": max_tokens}).encode()
    _, key = rng.choice(keys)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with client.stream("POST", "/api/v1/chat/completions", content=body, headers=headers) as reply:
        chunks = []
        async for chunk in reply.aiter_bytes():
            chunks.append(chunk)
            if leave and reply.status_code == 200 and b'"content"' in b"".join(chunks):
                break
        else:
            leave = False
        outcome = Outcome(model, stream, reply.status_code, b"".join(chunks),
                          "\n".join(f"{k}: {v}" for k, v in reply.headers.items()), len(body), max_tokens,
                          reply.headers.get("x-generation-id"), leave)
    check(outcome)
    return outcome


def check(outcome: Outcome) -> None:
    if outcome.status not in CLEAN_STATUSES:
        outcome.problems.append(f"status {outcome.status}")
    if outcome.status != 200:
        try:
            error = json.loads(outcome.body)["error"]
            assert {"code", "message", "metadata"} <= set(error) and "error_type" in error["metadata"]
        except (ValueError, KeyError, TypeError, AssertionError):
            outcome.problems.append(f"error not in OpenRouter's shape: {outcome.body[:200]!r}")
    elif outcome.stream and not outcome.left_early and not outcome.body.rstrip().endswith(b"data: [DONE]"):
        outcome.problems.append(f"stream ended without [DONE]: {outcome.body[-200:]!r}")
    elif not outcome.stream:
        try:
            json.loads(outcome.body)
        except ValueError:
            outcome.problems.append(f"200 body is not JSON: {outcome.body[:200]!r}")


async def drive(base_url: str, keys: list[tuple[str, str]]) -> tuple[list[Outcome], list[float]]:
    """Open loop: one request every 1/RATE seconds whatever the earlier ones are doing; probes on the side."""
    rng = random.Random(11)
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        tasks, probes = [], []
        started = time.monotonic()
        for n in range(int(SECONDS * RATE)):
            await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))
            tasks.append(asyncio.create_task(one_request(client, rng, keys)))
            if n % int(RATE) == 0:  # once a second: how long a cheap read takes under the soak
                began = time.monotonic()
                assert (await client.get("/api/v1/models")).status_code == 200
                probes.append(time.monotonic() - began)
        return list(await asyncio.gather(*tasks)), probes


def book_matches_ledger(gateway: Any, accounts: list[str]) -> dict[str, dict[str, int]]:
    books = {}
    conn = sqlite3.connect(gateway.data_dir / "routeway.sqlite3")
    try:
        for account_id in accounts:
            view = admin(gateway, "GET", f"/admin/accounts/{account_id}")["data"]
            credits, usage = conn.execute(
                "SELECT COALESCE(SUM(CASE WHEN amount_nano > 0 THEN amount_nano END), 0),"
                " COALESCE(SUM(CASE WHEN amount_nano < 0 THEN -amount_nano END), 0) FROM ledger WHERE account_id = ?",
                (account_id,)).fetchone()
            assert (view["total_credits_nano"], view["total_usage_nano"]) == (credits, usage), (view, credits, usage)
            assert view["reserved_nano"] == 0, view  # every request has ended: nothing may stay reserved
            assert usage <= credits, f"account {account_id} went below zero"
            books[account_id] = {"credits": credits, "usage": usage}
    finally:
        conn.close()
    return books


@pytest.mark.timeout(600)
def test_fault_soak(tmp_path: Path) -> None:
    upstream = MockUpstream().start()
    root = tmp_path / "soak"
    root.mkdir()
    gateway = start_gateway(soak_config(root / "routeway.toml", upstream.base_url), root / "data",
                            env_extra={"SOAK_UPSTREAM_KEY": SECRET})
    try:
        accounts, keys = make_tenants(gateway)
        began = time.monotonic()
        outcomes, probes = asyncio.run(drive(gateway.url, keys))
        elapsed = time.monotonic() - began

        problems = [f"{o.model} stream={o.stream}: {p}" for o in outcomes for p in o.problems]
        assert not problems, "\n".join(problems[:20])
        for o in outcomes:
            assert SECRET.encode() not in o.body and SECRET not in o.headers, f"{o.model} leaked the provider key"

        books = book_matches_ledger(gateway, accounts)
        conn = sqlite3.connect(gateway.data_dir / "routeway.sqlite3")
        try:
            assert conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'charge' AND amount_nano >= 0").fetchone()[0] == 0
            charges = dict(conn.execute("SELECT generation_id, -SUM(amount_nano) FROM ledger WHERE kind = 'charge'"
                                        " GROUP BY generation_id HAVING COUNT(*) = 1").fetchall())
            assert len(charges) == conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'charge'").fetchone()[0]
            costs = dict(conn.execute("SELECT id, total_cost_nano FROM generations").fetchall())
            for generation_id, charged in charges.items():
                assert costs.get(generation_id) == charged, f"charge of {generation_id} differs from its record"
            for o in outcomes:  # a charge never exceeds what the request could cost
                if o.generation_id in costs:
                    bound = o.body_bytes * PROMPT_NANO_PER_TOKEN + o.max_tokens * COMPLETION_NANO_PER_TOKEN
                    assert costs[o.generation_id] <= bound, (o.model, costs[o.generation_id], bound)
            limits = conn.execute("SELECT hash, limit_nano FROM api_keys WHERE limit_nano IS NOT NULL").fetchall()
            for key_hash, limit in limits:
                spent = conn.execute("SELECT COALESCE(-SUM(amount_nano), 0) FROM ledger WHERE key_hash = ?"
                                     " AND kind = 'charge'", (key_hash,)).fetchone()[0]
                assert spent <= limit, f"key {key_hash[:8]} spent {spent} past its limit {limit}"
            records = conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
        finally:
            conn.close()
        answered = [o for o in outcomes if o.generation_id]
        assert all(o.generation_id in costs for o in answered if o.status == 200 and not o.left_early)

        stop_gateway(gateway)
        for path in gateway.data_dir.iterdir():
            if path.is_file() and "sqlite3" in path.name:
                assert SECRET.encode() not in path.read_bytes(), f"{path.name} holds the provider key"
        log_text = "".join(p.read_text(errors="replace") for p in root.glob("routeway-*.log"))
        assert SECRET not in log_text, "the server log holds the provider key"
        assert "Traceback" not in log_text, log_text[-3000:]
        gateway = start_gateway(root / "routeway.toml", root / "data", env_extra={"SOAK_UPSTREAM_KEY": SECRET})
        assert book_matches_ledger(gateway, accounts) == books  # the book rebuilt from the ledger is the same

        statuses = Counter(o.status for o in outcomes)
        probes.sort()
        figures = {
            "seconds": round(elapsed, 1), "requests": len(outcomes), "rate_per_s": RATE,
            "statuses": dict(sorted(statuses.items())), "streams": sum(o.stream for o in outcomes),
            "left_early": sum(o.left_early for o in outcomes), "generation_records": records,
            "charged_usd": round(sum(b["usage"] for b in books.values()) / 1e9, 9),
            "by_model": {m: dict(Counter(o.status for o in outcomes if o.model == m)) for m in MIX},
            "probe_ms_p50_max": [round(probes[len(probes) // 2] * 1000, 1), round(probes[-1] * 1000, 1)],
        }
        artifacts = Path(__file__).resolve().parent.parent / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        (artifacts / "soak.json").write_text(json.dumps(figures, indent=2))
        print(json.dumps(figures))
        assert statuses[200] > len(outcomes) * 0.3  # the soak exercised real answers, not only failures
    finally:
        stop_gateway(gateway)
        upstream.stop()
