"""README promises about what goes upstream and how a stream ends, each test named after its promise."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Account
from tests.support.upstream import MockUpstream

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
STRICT = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def test_max_tokens_is_always_sent_upstream(account: Account, upstream: MockUpstream) -> None:
    """Without the client's max_tokens, the bound the reservation assumed goes upstream: the endpoint's
    max output, or else its context; the client's own limit goes as sent."""
    hello = [{"role": "user", "content": "hello"}]
    assert account.chat({"model": "test/echo", "messages": hello}).status_code == 200
    assert upstream.requests[-1]["max_tokens"] == 1000  # test/echo: max_output = 1000
    assert account.chat({"model": "test/say", "messages": hello, "stream": True}).status_code == 200
    assert upstream.requests[-1]["max_tokens"] == 8192  # test/say: no max_output, context 8192
    assert account.chat({"model": "test/echo", "messages": hello, "max_tokens": 7}).status_code == 200
    assert upstream.requests[-1]["max_tokens"] == 7


def test_a_streamed_strict_json_failure_is_an_invalid_response(account: Account) -> None:
    response = account.chat({"model": "test/say", "messages": [{"role": "user", "content": '{"name": 7, "age": 1}'}],
                             "max_tokens": 200, "response_format": STRICT, "stream": True})
    assert response.status_code == 200
    [error] = [e for e in events(response.text) if "error" in e]
    assert error["error"]["code"] == 502
    assert error["error"]["metadata"]["error_type"] == "invalid_response"
    assert error["choices"][0]["finish_reason"] == "error"


def test_an_internal_error_mid_stream_ends_with_an_error_chunk(account: Account) -> None:
    """After the first token an internal error cannot change the status: it ends the stream with an error
    chunk (finish_reason "error", error_type "server"), then the usage chunk and [DONE]."""
    response = account.chat({"model": "test/odd-choice", "messages": [{"role": "user", "content": "x"}],
                             "max_tokens": 20, "stream": True})
    assert response.status_code == 200
    lines = [line for line in response.text.splitlines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = events(response.text)
    assert [c["choices"][0]["delta"]["content"] for c in chunks[:2]] == ["t0 ", "t1 "]
    error, usage = chunks[-2], chunks[-1]
    assert error["error"]["code"] == 500 and error["error"]["metadata"]["error_type"] == "server"
    assert error["choices"][0]["finish_reason"] == "error"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    [(_, status, cost, cancelled)] = account.generations()
    assert status == 500 and cost > 0 and cancelled == 0  # the relayed tokens are billed
