"""The anthropic adapter against a real Messages-protocol server on loopback, through the openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway
from tests.support.anthropic_upstream import KEY_ENV, MockAnthropic, anthropic_config

WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def claude_gateway(anthropic: MockAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("anthropic")
    (root / "routeway.toml").write_text(anthropic_config(anthropic.base_url, (
        ("anthropic/claude-sonnet-4", "claude-echo"), ("test/claude-tool", "claude-tool"),
        ("test/claude-overloaded", "claude-overloaded"), ("test/claude-garbled-usage", "claude-garbled-usage"))))
    gateway = start_gateway(root / "routeway.toml", root / "data", KEY_ENV)
    yield gateway
    stop_gateway(gateway)


@pytest.fixture()
def claude(claude_gateway: Gateway) -> openai.OpenAI:
    account = claude_gateway.account(credits=5)
    return account.openai_client()


def test_chat_with_thinking(claude: openai.OpenAI, anthropic: MockAnthropic) -> None:
    reply = claude.chat.completions.create(
        model="anthropic/claude-sonnet-4", max_tokens=4000, reasoning_effort="high",
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hello"}])
    sent = anthropic.requests[-1]
    assert sent["system"] == "Be terse." and sent["model"] == "claude-echo"
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 3200} and sent["max_tokens"] == 4000
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert anthropic.headers[-1]["anthropic-version"] == "2023-06-01"
    message = reply.choices[0].message
    assert message.content == "echo: hello"
    assert message.model_extra["reasoning"] == "Let me think."
    assert message.model_extra["reasoning_details"] == [{"type": "reasoning.text", "text": "Let me think.",
                                                         "signature": "sig-abc123", "format": "anthropic-claude-v1", "index": 0}]
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].model_extra["native_finish_reason"] == "end_turn"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (16, 7)
    assert reply.usage.prompt_tokens_details.cached_tokens == 4


def test_streamed_chat_with_thinking(claude: openai.OpenAI) -> None:
    chunks = list(claude.chat.completions.create(
        model="anthropic/claude-sonnet-4", max_tokens=4000, reasoning_effort="high", stream=True,
        messages=[{"role": "user", "content": "streams"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning") or "" for c in chunks if c.choices)
    signatures = [d.get("signature") for c in chunks if c.choices
                  for d in (c.choices[0].delta.model_extra or {}).get("reasoning_details") or [] if d.get("signature")]
    assert (text, reasoning, signatures) == ("echo: streams", "Let me think.", ["sig-abc123"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.prompt_tokens == 16 and chunks[-1].usage.completion_tokens == 7


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_becomes_tool_calls(claude: openai.OpenAI, anthropic: MockAnthropic, stream: bool) -> None:
    request = {"model": "test/claude-tool", "max_tokens": 500, "tools": WEATHER, "tool_choice": "required",
               "messages": [{"role": "user", "content": "weather?"}]}
    if stream:
        name, arguments, call_id, finish = "", "", "", None
        for chunk in claude.chat.completions.create(**request, stream=True):
            for c in chunk.choices:
                for d in c.delta.tool_calls or []:
                    call_id += d.id or ""
                    name += (d.function.name or "") if d.function else ""
                    arguments += (d.function.arguments or "") if d.function else ""
                finish = c.finish_reason or finish
    else:
        choice = claude.chat.completions.create(**request).choices[0]
        [call] = choice.message.tool_calls
        name, arguments, call_id, finish = call.function.name, call.function.arguments, call.id, choice.finish_reason
    assert (name, json.loads(arguments), call_id, finish) == ("get_weather", {"city": "Paris"}, "toolu_01", "tool_calls")
    sent = anthropic.requests[-1]
    assert sent["tools"] == [{"name": "get_weather", "description": "Weather",
                              "input_schema": WEATHER[0]["function"]["parameters"]}]
    assert sent["tool_choice"] == {"type": "any"}


def test_thinking_signatures_and_tool_results_go_back_unchanged(claude: openai.OpenAI, anthropic: MockAnthropic) -> None:
    claude.chat.completions.create(model="anthropic/claude-sonnet-4", max_tokens=4000, reasoning_effort="high", messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": None,
         "reasoning_details": [{"type": "reasoning.text", "text": "Hmm.", "signature": "sig-xyz", "format": "anthropic-claude-v1"}],
         "tool_calls": [{"id": "toolu_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_9", "content": "sunny"},
        {"role": "user", "content": "and now?"},
    ], tools=WEATHER)
    messages = anthropic.requests[-1]["messages"]
    assert messages[0]["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                     "data": "iVBORw0KGgo="}}
    assert messages[1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig-xyz"},
        {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}]}
    assert messages[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_9", "content": "sunny"}, {"type": "text", "text": "and now?"}]}


def test_overloaded_is_a_502(claude: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as error:
        claude.chat.completions.create(model="test/claude-overloaded", max_tokens=10,
                                       messages=[{"role": "user", "content": "x"}])
    assert error.value.status_code == 502 and "Overloaded" in str(error.value)


def test_garbled_usage_is_a_clean_502_or_an_estimate(claude_gateway: Gateway) -> None:
    """Anthropic's counts are untrusted too: never added up into a crash, never billed as sent."""
    account = claude_gateway.account(credits=5)
    body = {"model": "test/claude-garbled-usage", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    whole = account.chat(body)
    assert whole.status_code == 502 and "usage" in whole.json()["error"]["message"]
    streamed = account.chat({**body, "stream": True})
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
    assert "".join(c["delta"].get("content") or "" for e in events for c in e["choices"]) == "echo: hi"
    assert not any("error" in e for e in events) and streamed.text.rstrip().endswith("data: [DONE]")
    rows = claude_gateway.rows("SELECT status, usage_estimated, usage_rejected FROM generations WHERE account_id = ?"
                               " ORDER BY created_at", (account.id,))
    assert rows == [(502, 0, None), (200, 1, "not_object")]
    assert 0 <= 5 - account.state()["balance"] < 0.01
