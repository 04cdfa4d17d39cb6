"""The planner on its own: sorts by measured latency and throughput, soft preferences, partitions, the
seeded draw and outage avoidance on an explicit clock."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec

from routeway.catalog import Catalog
from routeway.config import load_settings
from routeway.routing.health import ERROR, OK, Health
from routeway.routing.plan import SEED_VARIABLE, Demand, Planner, seeded_random
from routeway.wire.chat import ChatRequest

TOML = """
[[providers]]
name = "fast"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[[providers]]
name = "slow"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[[models]]
id = "t/a"
context_length = 1000
prompt_price = "1"
completion_price = "1"
[[models]]
id = "t/b"
context_length = 1000
prompt_price = "1"
completion_price = "1"
[[endpoints]]
model = "t/a"
provider = "slow"
upstream_model = "a"
prompt_price = "0.1"
completion_price = "0.1"
[[endpoints]]
model = "t/a"
provider = "fast"
upstream_model = "a"
[[endpoints]]
model = "t/b"
provider = "fast"
upstream_model = "b"
prompt_price = "0.01"
completion_price = "0.01"
"""


def planner(tmp_path: Path) -> tuple[Planner, Health]:
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    health = Health()
    return Planner(Catalog.build(load_settings(path, env={})), health, random.Random(1)), health


def chat(**fields: object) -> ChatRequest:
    return msgspec.convert({"messages": [{"role": "user", "content": "x"}], **fields}, ChatRequest)


def order(p: Planner, request: ChatRequest, now: float = 1000.0) -> list[str]:
    return [f"{a.model.id}@{a.endpoint.tag}" for a in p.plan(request, Demand(10, None), now)]


def test_sort_by_measured_latency_and_throughput(tmp_path: Path) -> None:
    p, health = planner(tmp_path)
    for _ in range(10):
        health.of("fast/a").record(OK, 990.0, ttft_ms=100.0, tokens_per_s=90.0)
        health.of("slow/a").record(OK, 990.0, ttft_ms=900.0, tokens_per_s=10.0)
    assert order(p, chat(model="t/a", provider={"sort": "latency"})) == ["t/a@fast", "t/a@slow"]
    assert order(p, chat(model="t/a", provider={"sort": "throughput"})) == ["t/a@fast", "t/a@slow"]
    assert order(p, chat(model="t/a:nitro")) == ["t/a@fast", "t/a@slow"]
    assert order(p, chat(model="t/a", provider={"sort": "price"})) == ["t/a@slow", "t/a@fast"]
    # soft preferences: the slow endpoint is cheaper (drawn first almost always) but misses the bar
    assert order(p, chat(model="t/a", provider={"preferred_max_latency": 0.5}))[0] == "t/a@fast"
    assert order(p, chat(model="t/a", provider={"preferred_min_throughput": {"p50": 50}}))[0] == "t/a@fast"


def test_partition_none_sorts_across_models(tmp_path: Path) -> None:
    p, _ = planner(tmp_path)
    grouped = order(p, chat(model="t/a", models=["t/b"], provider={"sort": {"by": "price"}}))
    assert grouped == ["t/a@slow", "t/a@fast", "t/b@fast"]
    mixed = order(p, chat(model="t/a", models=["t/b"], provider={"sort": {"by": "price", "partition": "none"}}))
    assert mixed == ["t/b@fast", "t/a@slow", "t/a@fast"]


def test_a_seed_makes_the_draw_reproducible(tmp_path: Path) -> None:
    def draws(rng: random.Random) -> list[str]:
        p = Planner(planner(tmp_path)[0].catalog, Health(), rng)
        return [order(p, chat(model="t/a"))[0] for _ in range(500)]

    seeded = draws(seeded_random({SEED_VARIABLE: "42"}))
    assert seeded == draws(seeded_random({SEED_VARIABLE: "42"}))
    assert set(seeded) == {"t/a@slow", "t/a@fast"}  # still a draw: the dearer endpoint first ~1 time in 100
    assert draws(seeded_random({SEED_VARIABLE: "43"})) != seeded
    assert seeded_random({}).random() != seeded_random({}).random()  # unseeded: the OS's entropy


def test_an_endpoint_in_outage_is_never_drawn_first_until_the_window_passes(tmp_path: Path) -> None:
    p, health = planner(tmp_path)
    for _ in range(3):  # three errors, every outcome in the window: an outage
        health.of("slow/a").record(ERROR, 1000.0)
    during = [order(p, chat(model="t/a"), now=1001.0) for _ in range(50)]
    assert all(o == ["t/a@fast", "t/a@slow"] for o in during)  # the cheap one is tried last, not skipped
    after = {order(p, chat(model="t/a"), now=1031.0)[0] for _ in range(50)}
    assert "t/a@slow" in after  # 30 s later it is drawn again (99 times in 100 for its price)
