"""Faults before and after the first token, against real loopback upstreams: which endpoint served,
what the client got, what was charged, what the record says, and what health shows afterwards."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Account, Gateway, start_gateway, stop_gateway
from tests.support.upstream import MockUpstream

FAULTS = ["fail-500", "rate-limited", "reset", "hang", "not-json", "wrong-type", "stall-first", "bad-sse",
          "truncated-early", "truncated", "hang-midstream", "trickle", "toggle", "breaker", "outage"]


def config(upstream_url: str) -> str:
    parts = [
        "[server]\nkeepalive_seconds = 0.3\n",
        "[routing]\nmax_attempts = 2\nbreaker_threshold = 3\nbreaker_cooldown = 1.5\n",
        f'[[providers]]\nname = "flaky"\ndisplay_name = "Flaky"\nkind = "openai"\nbase_url = "{upstream_url}"\n'
        "[providers.timeouts]\nfirst_byte = 1\nidle = 1\n",
        f'[[providers]]\nname = "steady"\ndisplay_name = "Steady"\nkind = "openai"\nbase_url = "{upstream_url}"\n',
        f'[[providers]]\nname = "private"\ndisplay_name = "Private"\nkind = "openai"\nbase_url = "{upstream_url}"\n'
        'data_collection = "deny"\nzdr = true\n',
        f'[[providers]]\nname = "logger"\ndisplay_name = "Logger"\nkind = "openai"\nbase_url = "{upstream_url}"\n'
        'data_collection = "allow"\n',
    ]
    for n, _price in ((1, "0.5"), (2, "1.0"), (3, "1.5")):
        parts.append(f'[[providers]]\nname = "lb-{n}"\ndisplay_name = "LB {n}"\nkind = "openai"\nbase_url = "{upstream_url}"\n')
    model = ('[[models]]\nid = "{id}"\nname = "{id}"\ncontext_length = {ctx}\nprompt_price = "1"\ncompletion_price = "1"\n'
             'supported_parameters = {params}\n')
    endpoint = ('[[endpoints]]\nmodel = "{model}"\nprovider = "{provider}"\nupstream_model = "{upstream}"\n'
                'prompt_price = "{price}"\ncompletion_price = "{price}"\n{extra}\n')
    params = '["max_tokens", "temperature"]'
    for fault in FAULTS:
        upstream = {"breaker": "toggle#breaker", "outage": "fail-500#outage"}.get(fault, f"{fault}#faults")
        parts.append(model.format(id=f"fault/{fault}", ctx=8192, params=params))
        # the flaky endpoint is cheaper: load balancing prefers it when it is healthy
        parts.append(endpoint.format(model=f"fault/{fault}", provider="flaky", upstream=upstream, price="0.5", extra=""))
        parts.append(endpoint.format(model=f"fault/{fault}", provider="steady", upstream="echo", price="2", extra=""))
    parts.append(model.format(id="test/lb", ctx=8192, params=params))
    for n, price in ((1, "0.5"), (2, "1.0"), (3, "1.5")):
        parts.append(endpoint.format(model="test/lb", provider=f"lb-{n}", upstream="echo", price=price, extra=""))
    parts.append(model.format(id="test/caps", ctx=8192, params='["max_tokens", "temperature", "tools", "seed"]'))
    parts.append(endpoint.format(model="test/caps", provider="private", upstream="echo", price="3",
                                 extra='context_length = 600\nquantization = "fp8"\nsupported_parameters = ["max_tokens", "temperature"]'))
    parts.append(endpoint.format(model="test/caps", provider="logger", upstream="echo", price="1",
                                 extra='quantization = "int4"\nmax_output = 200\nsupported_parameters = ["max_tokens", "tools", "seed"]'))
    parts.append(model.format(id="test/free", ctx=8192, params=params))
    parts.append(endpoint.format(model="test/free", provider="lb-1", upstream="echo", price="0", extra=""))
    parts.append(endpoint.format(model="test/free", provider="lb-2", upstream="echo", price="1", extra=""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def routed(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("routing")
    path = root / "routeway.toml"
    path.write_text(config(upstream.base_url))
    gateway = start_gateway(path, root / "data")
    yield gateway
    stop_gateway(gateway)


@pytest.fixture()
def user(routed: Gateway) -> Account:
    return routed.account(credits=10)


def ask(account: Account, model: str, stream: bool = False, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "alpha beta"}], "max_tokens": 20,
            "stream": stream, **extra}
    return account.chat(body)


def generation(account: Account, generation_id: str) -> dict:
    return httpx.get(account.gateway.api + "/generation", params={"id": generation_id},
                     headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]


def endpoints(gateway: Gateway, model: str) -> dict[str, dict]:
    data = httpx.get(gateway.api + f"/models/{model}/endpoints").json()["data"]
    return {e["tag"]: e for e in data["endpoints"]}


def stream_text(response: httpx.Response) -> tuple[str, list[dict]]:
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    text = "".join(c["delta"].get("content") or "" for e in events for c in e.get("choices", []))
    return text, events


# fault, streamed, the status the flaky attempt is recorded with
BEFORE_FIRST_TOKEN = [
    ("fail-500", False, 500), ("rate-limited", False, 429), ("reset", False, 502), ("hang", True, 408),
    ("not-json", False, 502), ("wrong-type", False, 502), ("stall-first", True, 408), ("bad-sse", True, 502),
    ("truncated-early", True, 502), ("fail-500", True, 500),
]


@pytest.mark.parametrize(("fault", "stream", "status"), BEFORE_FIRST_TOKEN)
def test_fault_before_the_first_token_falls_back(user: Account, fault: str, stream: bool, status: int) -> None:
    response = ask(user, f"fault/{fault}", stream=stream, provider={"order": ["flaky", "steady"]})
    assert response.status_code == 200, response.text
    if stream:
        text, events = stream_text(response)
        assert events[0]["provider"] == "Steady" and not any("error" in e for e in events)
        gid = events[0]["id"]
    else:
        text, gid = response.json()["choices"][0]["message"]["content"], response.json()["id"]
        assert response.json()["provider"] == "Steady"
    assert text == "echo: alpha beta"
    record = generation(user, gid)
    assert [(a["provider"], a["status"]) for a in record["provider_responses"]] == [("flaky", status), ("steady", 200)]
    # charged once, at the steady endpoint's price ($2/M both ways), for its own tokens
    assert record["provider_name"] == "Steady"
    assert record["total_cost"] == pytest.approx((record["tokens_prompt"] + record["tokens_completion"]) * 2 / 1e6)
    assert user.state()["total_usage"] == pytest.approx(record["total_cost"])
    health = endpoints(user.gateway, f"fault/{fault}")
    if fault == "rate-limited":
        assert health["flaky"]["status"] == -3  # Retry-After: 7 is being honoured
    else:
        assert health["flaky"]["uptime_last_5m"] < 100
    assert health["steady"]["uptime_last_5m"] == 100


def test_rate_limited_endpoint_is_skipped_until_retry_after(user: Account) -> None:
    first = ask(user, "fault/rate-limited", provider={"order": ["flaky", "steady"]})
    assert first.status_code == 200
    second = ask(user, "fault/rate-limited", provider={"order": ["flaky", "steady"]})
    attempts = generation(user, second.json()["id"])["provider_responses"]
    assert [a["provider"] for a in attempts] == ["steady"]
    only_flaky = ask(user, "fault/rate-limited", provider={"only": ["flaky"]})
    assert only_flaky.status_code == 429 and 1 <= int(only_flaky.headers["retry-after"]) <= 7


@pytest.mark.parametrize(("fault", "status"), [("truncated", 502), ("hang-midstream", 408)])
def test_fault_after_the_first_token_is_an_error_chunk_and_bills_what_was_sent(
        user: Account, fault: str, status: int) -> None:
    response = ask(user, f"fault/{fault}", stream=True, provider={"order": ["flaky", "steady"]})
    assert response.status_code == 200
    text, events = stream_text(response)
    assert text == "t0 t1 "  # never a fallback after the first token
    [error] = [e for e in events if "error" in e]
    assert error["error"]["code"] == status and error["choices"][0]["finish_reason"] == "error"
    record = generation(user, events[0]["id"])
    assert [a["provider"] for a in record["provider_responses"]] == ["flaky"]
    assert record["status"] == status and record["finish_reason"] == "error"
    assert record["tokens_completion"] > 0 and record["usage_estimated"] is True
    assert record["total_cost"] == pytest.approx((record["tokens_prompt"] + record["tokens_completion"]) * 0.5 / 1e6)
    assert events[-1]["usage"]["cost"] == pytest.approx(record["total_cost"])
    assert endpoints(user.gateway, f"fault/{fault}")["flaky"]["uptime_last_5m"] < 100


def test_slow_trickle_is_not_an_error_and_measures_throughput(user: Account) -> None:
    response = ask(user, "fault/trickle", stream=True, provider={"order": ["flaky"]})
    text, events = stream_text(response)
    assert text == "".join(f"t{i} " for i in range(10)) and not any("error" in e for e in events)
    flaky = endpoints(user.gateway, "fault/trickle")["flaky"]
    record = generation(user, events[0]["id"])
    assert flaky["uptime_last_5m"] == 100
    # latency is the time to the first token (within the request's), which came before the trickle's
    # nine 150 ms gaps: measured at the first token, not at the end of the stream
    assert 0 < flaky["latency_last_30m"]["p50"] <= record["latency"] + 1
    assert record["latency"] < record["generation_time"]
    # throughput is the completion tokens over the time from the first token to the last
    tokens_per_s = record["tokens_completion"] / (record["generation_time"] / 1000)
    assert flaky["throughput_last_30m"]["p50"] == pytest.approx(tokens_per_s, rel=0.1)


def test_breaker_opens_probes_and_closes(user: Account, upstream: MockUpstream) -> None:
    order = {"order": ["flaky", "steady"]}
    upstream.toggle_failing = True
    try:
        for _ in range(3):  # breaker_threshold = 3
            assert ask(user, "fault/breaker", provider=order).json()["provider"] == "Steady"
        state = endpoints(user.gateway, "fault/breaker")["flaky"]
        assert state["breaker_state"] == "open" and state["status"] == -5
        skipped = ask(user, "fault/breaker", provider=order)
        assert [a["provider"] for a in generation(user, skipped.json()["id"])["provider_responses"]] == ["steady"]
        metrics = httpx.get(user.gateway.url + "/metrics").text
        assert 'routeway_endpoint_breaker_state{endpoint="flaky/toggle#breaker"} 2.0' in metrics
        time.sleep(1.6)  # breaker_cooldown = 1.5: the next request is a half-open probe, which fails
        probe = ask(user, "fault/breaker", provider=order)
        assert [a["provider"] for a in generation(user, probe.json()["id"])["provider_responses"]] == ["flaky", "steady"]
        assert endpoints(user.gateway, "fault/breaker")["flaky"]["breaker_state"] == "open"
    finally:
        upstream.toggle_failing = False
    time.sleep(1.6)
    healed = ask(user, "fault/breaker", provider=order)
    assert healed.json()["provider"] == "Flaky"
    assert endpoints(user.gateway, "fault/breaker")["flaky"]["breaker_state"] == "closed"


@pytest.fixture()
def own_routed(upstream: MockUpstream, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway of its own: its seeded load balancer makes the same draws whichever tests ran before."""
    path = tmp_path / "routeway.toml"
    path.write_text(config(upstream.base_url))
    gateway = start_gateway(path, tmp_path / "data")
    yield gateway
    stop_gateway(gateway)


def test_default_balancing_avoids_an_endpoint_in_outage(own_routed: Gateway) -> None:
    user = own_routed.account(credits=10)
    providers = []
    for _ in range(8):
        response = ask(user, "fault/outage")
        assert response.status_code == 200 and response.json()["provider"] == "Steady"
        providers.append([a["provider"] for a in generation(user, response.json()["id"])["provider_responses"]])
    # the cheap flaky endpoint is tried while it looks healthy (the seeded draw picks it, as it does 16
    # times in 17), then skipped once it is in outage
    assert providers[0] == ["flaky", "steady"] and providers[-1] == ["steady"]
    assert endpoints(user.gateway, "fault/outage")["flaky"]["status"] in (-1, -5)


def test_load_balancing_follows_inverse_square_price(user: Account) -> None:
    counts = {"LB 1": 0, "LB 2": 0, "LB 3": 0}
    n = 2000
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {user.api_key}"}) as client:
        for _ in range(n):
            reply = client.post(user.gateway.api + "/chat/completions",
                                json={"model": "test/lb", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
            counts[reply.json()["provider"]] += 1
    weights = {"LB 1": 1 / 1.0 ** 2, "LB 2": 1 / 2.0 ** 2, "LB 3": 1 / 3.0 ** 2}  # total price 1, 2, 3 $/M
    total = sum(weights.values())
    for name, weight in weights.items():
        p = weight / total
        sigma = (p * (1 - p) / n) ** 0.5
        assert abs(counts[name] / n - p) < 4 * sigma, (counts, name)


def test_capabilities_and_preferences_filter_with_reasons(user: Account) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    # private: 600-token context, no tools, fp8, zdr; logger: max output 200, tools, int4, collects data
    assert ask(user, "test/caps", tools=tools).json()["provider"] == "Logger"
    assert ask(user, "test/caps", provider={"data_collection": "deny"}).json()["provider"] == "Private"
    assert ask(user, "test/caps", provider={"zdr": True}).json()["provider"] == "Private"
    assert ask(user, "test/caps", provider={"quantizations": ["int4"]}).json()["provider"] == "Logger"
    assert ask(user, "test/caps", max_tokens=300).json()["provider"] == "Private"
    assert ask(user, "test/caps", provider={"max_price": {"prompt": 2}}).json()["provider"] == "Logger"
    assert ask(user, "test/caps", provider={"sort": "price"}).json()["provider"] == "Logger"
    assert ask(user, "test/caps", seed=3, provider={"require_parameters": True}).json()["provider"] == "Logger"
    recorded = len(user.generations())
    nothing = ask(user, "test/caps", max_tokens=700, tools=tools)
    assert nothing.status_code == 404
    message = nothing.json()["error"]["message"]
    assert "test/caps" in message and "private: no tool use support" in message
    assert "logger: max output 200 < 700 requested" in message
    too_long = ask(user, "test/caps", max_tokens=650, provider={"only": ["private"]})
    assert too_long.status_code == 404 and "context 600 <" in too_long.json()["error"]["message"]
    assert "not in provider.only" in too_long.json()["error"]["message"]
    assert len(user.generations()) == recorded  # refused requests leave no record


def test_variants(user: Account) -> None:
    assert ask(user, "test/free:free").json()["provider"] == "LB 1"
    assert ask(user, "test/caps:floor").json()["provider"] == "Logger"
    assert ask(user, "test/free:nitro").status_code == 200
    assert ask(user, "test/caps:turbo").status_code == 400


def test_attempt_cap_and_metadata_header(user: Account) -> None:
    # max_attempts = 2: the third model is never tried
    response = user.chat({"model": "fault/fail-500", "models": ["fault/reset", "test/lb"], "max_tokens": 5,
                          "messages": [{"role": "user", "content": "x"}], "provider": {"order": ["flaky"], "allow_fallbacks": False}},
                         headers={"X-OpenRouter-Metadata": "enabled"})
    assert response.status_code == 502
    assert [e["status"] for e in response.json()["error"]["metadata"]["previous_errors"]] == [500]
    ok = user.chat({"model": "test/lb", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                   headers={"X-OpenRouter-Metadata": "enabled"})
    assert ok.json()["openrouter_metadata"]["provider_responses"][0]["status"] == 200
