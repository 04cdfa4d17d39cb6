"""What an upstream can make routeway hold: a flood streamed to clients that never read is read only as
fast as they take it (routeway's RSS stays bounded, and so does what the upstream could write), and an
answer past the provider's cap is a clean error — a 502 before the first byte, an error chunk and
[DONE] mid-stream — billed for what was relayed.

Each attack prints the probe's latency and routeway's RSS (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream
from tests.test_resource_limits import probe, rss_mb

CAP = 1024 * 1024  # the capped provider's max_answer_bytes and max_stream_bytes
MIB = 1024 * 1024


def _model(model_id: str, provider: str, upstream_model: str) -> str:
    return "\n".join(["[[models]]", f'id = "{model_id}"', "context_length = 8192", 'prompt_price = "1.00"',
                      'completion_price = "2.00"', "", "[[endpoints]]", f'model = "{model_id}"',
                      f'provider = "{provider}"', f'upstream_model = "{upstream_model}"', "max_output = 1000", ""])


@pytest.fixture(scope="module")
def gw(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("bounds")
    extra = "\n".join([
        "", "[[providers]]", 'name = "mock-cap"', 'kind = "openai"', f'base_url = "{upstream.base_url}"',
        f"max_answer_bytes = {CAP}", f"max_stream_bytes = {CAP}", "",
        _model("test/flood", "mock", "flood"), _model("test/huge-answer", "mock", "huge-answer"),
        _model("test/flood-capped", "mock-cap", "flood#capped"), _model("test/echo-capped", "mock-cap", "echo#capped"),
    ])
    config = write_config(root / "routeway.toml", upstream.base_url, extra)
    config.write_text(config.read_text().replace("[server]\n", "[server]\nsend_timeout_seconds = 60\n", 1))
    gateway = start_gateway(config, root / "data")
    yield gateway
    stop_gateway(gateway)


def _stalled_stream(gw: Gateway, key: str, model: str, small_window: bool = True) -> socket.socket:
    """A streamed chat request from a client that then never reads (its receive window fills up)."""
    sock = socket.create_connection(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])))
    if small_window:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "flood me"}], "stream": True,
                       "max_tokens": 1000}).encode()
    sock.sendall(b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (key.encode(), len(body), body))
    return sock


def test_clients_that_never_read_slow_their_upstream_and_memory_stays_bounded(gw: Gateway, upstream: MockUpstream) -> None:
    """Four clients that never read, each on a 256 MiB upstream stream: routeway reads from each upstream
    only as its client drains, so what the upstreams could write and routeway's RSS stay small."""
    account = gw.account(credits=100)
    before_rss = rss_mb(gw)
    first_flood = len(upstream.flood_sent)
    socks = [_stalled_stream(gw, account.api_key, "test/flood") for _ in range(4)]
    try:
        time.sleep(6)  # unbounded buffering reaches hundreds of MB in this time on loopback
        during_rss = rss_mb(gw)
        probe(gw, "4 stalled clients on 256 MiB upstream streams")
        sent = upstream.flood_sent[first_flood:]
        print(f"\nupstream bytes written per stream: {[round(n / MIB, 1) for n in sent]} MiB;"
              f" RSS {before_rss:.1f} -> {during_rss:.1f} MB")
        assert len(sent) == 4
        assert max(sent) < 24 * MIB, sent  # socket buffers on both sides plus routeway's window
        assert during_rss - before_rss < 80, (before_rss, during_rss)
    finally:
        for sock in socks:
            sock.close()


def test_a_client_reading_slowly_still_gets_the_whole_stream(gw: Gateway, upstream: MockUpstream) -> None:
    """Pausing the upstream is not an idle timeout: a reader that stalls longer than the provider's idle
    limit (3 s here) and then reads on gets the rest of the stream."""
    account = gw.account(credits=100)
    first_flood = len(upstream.flood_sent)
    sock = _stalled_stream(gw, account.api_key, "test/flood", small_window=False)
    try:
        time.sleep(4.5)  # past the idle limit, while routeway holds the upstream paused
        sock.settimeout(10)
        received, tail = 0, b""
        while received < 8 * MIB:
            chunk = sock.recv(1 << 20)
            assert chunk, "the stream ended early"
            received += len(chunk)
            tail = (tail + chunk)[-4096:]
        assert b'"error"' not in tail
        assert upstream.flood_sent[first_flood] >= 8 * MIB
    finally:
        sock.close()


def test_an_answer_past_the_cap_is_a_clean_502_and_costs_nothing(gw: Gateway) -> None:
    account = gw.account(credits=10)
    before_rss = rss_mb(gw)
    response = account.chat({"model": "test/huge-answer", "messages": [{"role": "user", "content": "hi"}],
                             "max_tokens": 100})
    probe(gw, "a 64 MiB upstream answer")
    print(f"RSS {before_rss:.1f} -> {rss_mb(gw):.1f} MB")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == 502 and "larger than 33,554,432 bytes" in error["message"], error
    assert error["metadata"]["error_type"]
    assert account.state()["total_usage"] == 0
    # the same cap, lowered per provider, and a small answer under it still passes
    capped = account.chat({"model": "test/echo-capped", "messages": [{"role": "user", "content": "hi"}],
                           "max_tokens": 100})
    assert capped.status_code == 200, capped.text


def test_a_stream_past_the_cap_ends_with_an_error_chunk_and_bills_what_was_relayed(gw: Gateway) -> None:
    account = gw.account(credits=10)
    body = {"model": "test/flood-capped", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_tokens": 1000}
    with httpx.stream("POST", gw.api + "/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {account.api_key}"}) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    errors = [c for c in chunks if c.get("error")]
    assert len(errors) == 1 and errors[0]["choices"][0]["finish_reason"] == "error"
    assert f"larger than {CAP:,} bytes" in errors[0]["error"]["message"]
    relayed = sum(len(c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    assert 0 < relayed <= CAP
    usage = chunks[-1]["usage"]
    assert 0 < usage["completion_tokens"] <= 1000 and usage["cost"] > 0  # billed for what was relayed, within its bound
    assert account.state()["total_usage"] == pytest.approx(usage["cost"])


def test_caps_and_sign_in_limits_are_checked_when_the_config_loads(tmp_path) -> None:
    from routeway.config import ConfigError, load_settings

    provider = '[[providers]]\nname = "p"\nkind = "openai"\nbase_url = "http://127.0.0.1:9"\n'
    for bad in ("max_answer_bytes = 0", "max_stream_bytes = 1.5", 'max_answer_bytes = "32MiB"', "max_stream_bytes = true"):
        (tmp_path / "bad.toml").write_text(provider + bad + "\n")
        with pytest.raises(ConfigError, match="must be a whole number of bytes"):
            load_settings(tmp_path / "bad.toml", env={})
    (tmp_path / "ok.toml").write_text(provider + "max_answer_bytes = 2048\n")
    [loaded] = load_settings(tmp_path / "ok.toml", env={}).providers
    assert loaded.max_answer_bytes == 2048 and loaded.max_stream_bytes == 256 * MIB
    (tmp_path / "limits.toml").write_text('[limits]\nsignin_per_key = "lots"\n')
    with pytest.raises(ConfigError, match="signin_per_key"):
        load_settings(tmp_path / "limits.toml", env={})
