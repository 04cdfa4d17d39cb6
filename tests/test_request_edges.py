"""Smaller edges of issue 18: integral floats in integer fields, what a client that leaves before any
byte pays, a 405 from the dashboard naming the allowed methods, and no traceback when the HTTP parser
refuses a body whose route had already started."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import Account, Gateway
from tests.support.upstream import MockUpstream
from tests.test_hostile_input import raw_request

HI = [{"role": "user", "content": "hi"}]


def test_integer_fields_take_integral_floats_and_refuse_fractions(account: Account, upstream: MockUpstream) -> None:
    answer = account.chat({"model": "test/echo", "messages": HI, "max_tokens": 5.0, "top_k": 2.0, "seed": -3.0,
                           "logprobs": True, "top_logprobs": 0.0, "reasoning": {"max_tokens": 1e2}})
    assert answer.status_code == 200, answer.text
    sent = upstream.requests[-1]
    assert sent["max_tokens"] == 5 and type(sent["max_tokens"]) is int  # forwarded as the integer
    assert sent["top_k"] == 2 and type(sent["top_k"]) is int and sent["seed"] == -3
    for field, value in (("top_logprobs", 0.5), ("max_tokens", 5.5), ("top_k", 1e-3), ("top_logprobs", 21.0),
                         ("max_tokens", 0.0)):
        refused = account.chat({"model": "test/echo", "messages": HI, "logprobs": True, field: value})
        assert refused.status_code == 400, (field, value, refused.text)
        error = refused.json()["error"]
        assert error["metadata"]["param"] == field and error["metadata"]["error_type"] == "invalid_request"
    refused = account.chat({"model": "test/echo", "messages": HI, "reasoning": {"max_tokens": 0.25}})
    assert refused.status_code == 400 and refused.json()["error"]["metadata"]["param"] == "reasoning.max_tokens"


def _prompt_only_charge(account: Account, generation_id: str) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = account.gateway.rows("SELECT cancelled, tokens_prompt, tokens_completion, usage_estimated,"
                                    " total_cost_nano FROM generations WHERE id = ?", (generation_id,))
        if rows:
            break
        time.sleep(0.02)
    [(cancelled, prompt, completion, estimated, cost)] = rows
    assert cancelled == 1 and estimated == 1
    assert prompt > 0 and completion == 0
    assert cost == prompt * 1000  # $1.00 per 1M prompt tokens = 1,000 nano-USD a token; no output billed
    assert account.state()["total_usage"] == pytest.approx(cost / 1e9)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_before_any_byte_pays_for_its_prompt_only(account: Account, stream: bool) -> None:
    """The upstream has read the prompt (and bills the operator for it), so it is billed, counted by
    routeway since no usage ever comes; no output reached the client, so none is billed."""
    model = "test/late-stream" if stream else "test/slow"  # first token after 1.2 s / answer after 300 ms
    before = {row[0] for row in account.generations()}
    with (pytest.raises(httpx.ReadTimeout),
          httpx.stream("POST", account.gateway.api + "/chat/completions", timeout=httpx.Timeout(30, read=0.15),
                       json={"model": model, "messages": HI, "max_tokens": 100, "stream": stream},
                       headers={"authorization": f"Bearer {account.api_key}"}) as response):
        for line in response.iter_lines():
            assert not line.startswith("data: {"), "a token arrived before the client left"
    deadline = time.monotonic() + 5
    while not {row[0] for row in account.generations()} - before and time.monotonic() < deadline:
        time.sleep(0.02)
    [generation_id] = {row[0] for row in account.generations()} - before
    _prompt_only_charge(account, generation_id)


def test_dashboard_405_names_the_allowed_methods(account: Account) -> None:
    answer = httpx.request("PUT", account.gateway.url + "/signin", timeout=10)
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, POST"
    assert "text/html" in answer.headers["content-type"]


@pytest.mark.parametrize("path", ["/api/v1/chat/completions", "/api/v1/keys"])
def test_a_body_the_parser_refuses_leaves_no_traceback(gateway: Gateway, path: str) -> None:
    """The head was fine, so the route had started (and answers 401); the body's framing is not: the
    client gets the parser's 400, and the route's late answer is dropped, not a traceback in the log."""
    log = gateway.data_dir.parent / f"routeway-{gateway.url.rsplit(':', 1)[1]}.log"
    seen = log.stat().st_size
    status_line, _, _ = raw_request(gateway, b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                             b"ffffffffffffffffff\r\n" % path.encode())
    assert status_line.startswith("HTTP/1.1 400"), status_line
    time.sleep(0.3)
    with log.open("rb") as written:
        written.seek(seen)
        assert b"Traceback" not in written.read()
