"""Anthropic's Messages API inbound, driven by the official anthropic SDK the way Claude Code drives it:
streamed tool use and thinking over several turns, against a raw-Hermes loopback engine (routeway parses
``<think>`` and ``<tool_call>`` itself) and against the Anthropic loopback upstream (thinking signatures
round-trip, ``anthropic-beta`` forwarded). Money and records match the same request via chat completions;
bad input gets Anthropic's error shape, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic as anthropic_sdk
import httpx
import pytest

from tests.conftest import Account, Gateway, start_gateway, stop_gateway, write_config
from tests.support.anthropic_upstream import KEY_ENV, PARAMETERS, MockAnthropic, anthropic_config
from tests.support.upstream import MockUpstream

WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.fixture(scope="module")
def messages_gateway(upstream: MockUpstream, anthropic: MockAnthropic,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("messages")
    extra = anthropic_config(anthropic.base_url, (("test/claude-tool", "claude-tool"), ("test/claude-echo", "claude-echo")),
                             (*PARAMETERS, "stop"))
    config = write_config(root / "routeway.toml", upstream.base_url, "\n" + extra)
    gateway = start_gateway(config, root / "data", KEY_ENV)
    yield gateway
    stop_gateway(gateway)


@pytest.fixture()
def account(messages_gateway: Gateway) -> Account:
    return messages_gateway.account(credits=5)


def claude(account: Account, **options: Any) -> anthropic_sdk.Anthropic:
    """The SDK as Claude Code configures it with ANTHROPIC_API_KEY (``x-api-key``)."""
    return anthropic_sdk.Anthropic(base_url=account.gateway.url, api_key=account.api_key, max_retries=0, **options)


def raw_events(client: anthropic_sdk.Anthropic, **request: Any) -> list[Any]:
    return list(client.messages.create(stream=True, **request))


def shape(events: list[Any]) -> list[str]:
    """The event sequence, deltas named by their type, runs of the same delta folded into one."""
    names: list[str] = []
    for event in events:
        name = event.type
        if name == "content_block_start":
            name += ":" + event.content_block.type
        elif name == "content_block_delta":
            name = event.delta.type
        if not (name.endswith("_delta") and names and names[-1] == name):
            names.append(name)
    return names


def test_streamed_tool_use_and_thinking_over_three_turns_on_a_raw_hermes_engine(account: Account,
                                                                                  upstream: MockUpstream) -> None:
    client = claude(account)
    turn1 = [{"role": "user", "content": "<think>Need weather.</think>\n" + CALL}]
    events = raw_events(client, model="test/say-hermes", max_tokens=300, tools=[WEATHER], messages=turn1,
                        thinking={"type": "enabled", "budget_tokens": 1024}, system="Be brief.")
    assert shape(events) == ["message_start", "content_block_start:thinking", "thinking_delta", "content_block_stop",
                             "content_block_start:tool_use", "input_json_delta", "content_block_stop",
                             "message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "tool_use" and events[-2].usage.output_tokens > 0
    sent = upstream.requests[-1]
    assert "<tools>" in sent["messages"][0]["content"] and "Be brief." in sent["messages"][0]["content"]

    with client.messages.stream(model="test/say-hermes", max_tokens=300, tools=[WEATHER], messages=turn1) as stream:
        first = stream.get_final_message()
    thinking, tool_use = first.content
    assert thinking.type == "thinking" and thinking.thinking == "Need weather."
    assert tool_use.type == "tool_use" and tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}
    assert first.stop_reason == "tool_use" and first.id.startswith("gen-")

    turn2 = [*turn1, {"role": "assistant", "content": first.content},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny, 21C"},
                                          {"type": "text", "text": "<think>It is sunny.</think>It is sunny in Paris."}]}]
    with client.messages.stream(model="test/say-hermes", max_tokens=300, tools=[WEATHER], messages=turn2) as stream:
        texts = list(stream.text_stream)
        second = stream.get_final_message()
    assert "".join(texts) == "It is sunny in Paris."
    assert [b.type for b in second.content] == ["thinking", "text"] and second.stop_reason == "end_turn"
    history = upstream.requests[-1]["messages"]
    assert any(m["role"] == "assistant" and '"get_weather"' in m["content"] for m in history)
    assert any(m["role"] == "tool" and m["content"] == "<tool_response>\nSunny, 21C\n</tool_response>" for m in history)

    turn3 = [*turn2, {"role": "assistant", "content": second.content},
             {"role": "user", "content": "Thanks!"}]
    third = client.messages.create(model="test/say-hermes", max_tokens=300, tools=[WEATHER], messages=turn3)
    assert [b.type for b in third.content] == ["text"] and third.content[0].text == "Thanks!"
    assert third.usage.input_tokens > 0 and third.usage.output_tokens > 0
    apis = account.gateway.rows("SELECT api FROM generations WHERE account_id = ?", (account.id,))
    assert apis == [("messages",)] * 4


def test_thinking_signatures_round_trip_through_an_anthropic_upstream(account: Account,
                                                                      anthropic: MockAnthropic) -> None:
    client = claude(account)
    beta = {"anthropic-beta": "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"}
    ask = [{"role": "user", "content": "weather in Paris?"}]
    events = raw_events(client, model="test/claude-tool", max_tokens=4000, tools=[WEATHER], messages=ask,
                        thinking={"type": "enabled", "budget_tokens": 2000}, extra_headers=beta)
    assert shape(events) == ["message_start", "content_block_start:thinking", "thinking_delta", "signature_delta",
                             "content_block_stop", "content_block_start:tool_use", "input_json_delta",
                             "content_block_stop", "message_delta", "message_stop"]
    sent, headers = anthropic.requests[-1], anthropic.headers[-1]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert sent["tools"][0]["input_schema"] == WEATHER["input_schema"]
    assert headers["anthropic-beta"] == beta["anthropic-beta"]  # forwarded as the client sent them
    assert headers["anthropic-version"] == client.default_headers["anthropic-version"] != "2023-06-01"
    assert headers["x-api-key"] == "test-anthropic-key"  # the upstream's key, never the client's
    assert "authorization" not in {name.lower() for name in headers}

    with client.messages.stream(model="test/claude-tool", max_tokens=4000, tools=[WEATHER], messages=ask,
                                thinking={"type": "enabled", "budget_tokens": 2000}) as stream:
        first = stream.get_final_message()
    thinking, tool_use = first.content
    assert (thinking.thinking, thinking.signature) == ("Let me think.", "sig-abc123")
    assert tool_use.input == {"city": "Paris"} and tool_use.id == "toolu_01" and first.stop_reason == "tool_use"
    assert (first.usage.input_tokens, first.usage.cache_read_input_tokens, first.usage.output_tokens) == (12, 4, 7)

    follow = [*ask, {"role": "assistant", "content": first.content},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "Sunny"},
                                           {"type": "text", "text": "and now?"}]}]
    with client.messages.stream(model="test/claude-echo", max_tokens=4000, messages=follow,
                                thinking={"type": "enabled", "budget_tokens": 2000}) as stream:
        reply = stream.get_final_message()
    replayed = anthropic.requests[-1]["messages"]
    assert replayed[1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-abc123"},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]}
    assert replayed[2]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_01", "content": "Sunny"}
    assert [(b.type, getattr(b, "signature", None)) for b in reply.content] == [("thinking", "sig-abc123"),
                                                                                ("text", None)]
    assert reply.content[1].text == "echo: and now?" and reply.stop_reason == "end_turn"

    third = [*follow, {"role": "assistant", "content": reply.content}, {"role": "user", "content": "thanks"}]
    last = client.messages.create(model="test/claude-echo", max_tokens=4000, messages=third)
    assert anthropic.requests[-1]["messages"][3]["content"][0] == {
        "type": "thinking", "thinking": "Let me think.", "signature": "sig-abc123"}
    assert last.content[0].text == "echo: thanks" and "thinking" not in anthropic.requests[-1]


def test_documents_and_images_reach_an_anthropic_upstream_as_blocks(account: Account,
                                                                     anthropic: MockAnthropic) -> None:
    claude(account).messages.create(model="test/claude-echo", max_tokens=100, messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "summarize"}]}])
    assert anthropic.requests[-1]["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "data": "JVBERi0x", "media_type": "application/pdf"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "summarize"}]


def test_money_and_records_match_chat_completions(account: Account, upstream: MockUpstream) -> None:
    """One conversation (system, tool use, tool result) through both APIs: the same upstream body, the same
    tokens and charge, records that differ only by the API they came in by."""
    chat_history = [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "user", "content": [{"type": "text", "text": "So what is it like?"}]}]
    tool = {"type": "function", "function": {"name": "get_weather", "description": WEATHER["description"],
                                             "parameters": WEATHER["input_schema"]}}
    oa = account.openai_client()
    via_chat = oa.chat.completions.create(model="test/say-hermes", max_tokens=300, messages=chat_history, tools=[tool],
                                          stream=True, stream_options={"include_usage": True})
    chunks = list(via_chat)
    chat_body = upstream.requests[-1]
    with claude(account).messages.stream(
            model="test/say-hermes", max_tokens=300, system="Be brief.", tools=[WEATHER], messages=[
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather",
                                                   "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny"},
                                             {"type": "text", "text": "So what is it like?"}]}]) as stream:
        message = stream.get_final_message()
    assert upstream.requests[-1] == chat_body
    assert message.content[0].text == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    rows = account.gateway.rows(
        "SELECT api, model, provider_slug, tokens_prompt, tokens_completion, total_cost_nano, finish_reason, status,"
        " streamed FROM generations WHERE account_id = ? ORDER BY created_at", (account.id,))
    assert [row[0] for row in rows] == ["chat", "messages"]
    assert rows[0][1:] == rows[1][1:] and rows[0][5] > 0
    charges = account.gateway.rows("SELECT amount_nano FROM ledger WHERE account_id = ? AND kind = 'charge'",
                                   (account.id,))
    assert len(charges) == 2 and charges[0] == charges[1] == (-rows[0][5],)
    assert message.usage.input_tokens == rows[1][3] and message.usage.output_tokens == rows[1][4]
    record = httpx.get(account.gateway.api + "/generation", params={"id": message.id},
                       headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
    assert record["api"] == "messages" and record["total_cost"] > 0


def test_bearer_token_and_api_prefix_as_claude_code_sets_them(account: Account) -> None:
    """ANTHROPIC_BASE_URL=http://host/api with ANTHROPIC_AUTH_TOKEN: Bearer, and /api/v1/messages."""
    client = anthropic_sdk.Anthropic(base_url=account.gateway.url + "/api", auth_token=account.api_key,
                                     api_key=None, max_retries=0)
    reply = client.messages.create(model="test/say-hermes", max_tokens=50,
                                   messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert reply.content[0].text == "hi" and reply.role == "assistant" and reply.type == "message"


def test_content_blocks_reach_the_engine_translated(account: Account, upstream: MockUpstream) -> None:
    pdf = {"type": "document", "title": "report.pdf",
           "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}
    claude(account).messages.create(
        model="test/say", max_tokens=50, stop_sequences=["END"], metadata={"user_id": "user-7"},
        system=[{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.0; cch=0f3a;"},
                {"type": "text", "text": "Rule one.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Rule two."}],
        messages=[{"role": "user", "content": [image, pdf, {"type": "text", "text": "describe"}]}])
    sent = upstream.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Rule one.\n\nRule two."}  # no attribution hash
    assert sent["messages"][1]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
        {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        {"type": "text", "text": "describe"}]
    assert sent["max_tokens"] == 50


def test_count_tokens_is_an_uncharged_estimate(account: Account) -> None:
    client = claude(account)
    short = client.messages.count_tokens(model="test/say-hermes", messages=[{"role": "user", "content": "hi"}])
    long = client.messages.count_tokens(model="test/say-hermes", tools=[WEATHER], system="Be brief.",
                                        messages=[{"role": "user", "content": "hi " * 400}])
    assert 0 < short.input_tokens < long.input_tokens
    assert account.generations() == [] and account.ledger_sum() == 5_000_000_000


def test_model_list_in_anthropic_shape_for_claude_code(account: Account) -> None:
    client = claude(account)
    page = client.models.list(limit=2)
    assert len(page.data) == 2 and page.has_more and page.first_id == page.data[0].id
    assert all(m.type == "model" and m.display_name and m.created_at for m in page.data)
    after = client.models.list(limit=1000, after_id=page.last_id)
    every = httpx.get(account.gateway.url + "/v1/models", params={"limit": 1000}).json()["data"]  # OpenRouter's shape
    assert [m.id for m in page.data] + [m.id for m in after.data] == [m["id"] for m in every]
    assert not after.has_more and "test/claude-tool" in [m.id for m in after.data]
    assert "architecture" in every[0] and "type" not in every[0]


def test_a_stream_failing_midway_ends_with_an_error_event(account: Account) -> None:
    client = claude(account)
    with pytest.raises(anthropic_sdk.APIStatusError) as failed, client.messages.stream(
            model="test/midstream-error", max_tokens=50, messages=[{"role": "user", "content": "a b c d"}]) as stream:
        list(stream.text_stream)
    assert failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    with httpx.stream("POST", account.gateway.url + "/v1/messages", headers={"x-api-key": account.api_key},
                      json={"model": "test/midstream-error", "max_tokens": 50, "stream": True,
                            "messages": [{"role": "user", "content": "a b c d"}]}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("event: ")]
    assert lines[0] == "event: message_start" and lines[-1] == "event: error" and "event: message_stop" not in lines
    [(status, cancelled)] = account.gateway.rows(
        "SELECT status, cancelled FROM generations WHERE account_id = ? ORDER BY created_at DESC LIMIT 1",
        (account.id,))
    assert status == 502 and not cancelled


BAD: list[tuple[dict[str, Any], int, str, str]] = [
    ({"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request_error", "`model`"),
    ({"model": "test/say", "max_tokens": 10}, 400, "invalid_request_error", "`messages`"),
    ({"model": "test/say", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, 400,
     "invalid_request_error", "max_tokens"),
    ({"model": "test/say", "messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error",
     "messages[0].role"),
    ({"model": "test/say", "messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]}, 400,
     "invalid_request_error", "messages[0].content[0].type"),
    ({"model": "test/say", "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, 400,
     "invalid_request_error", "tool_use_id"),
    ({"model": "test/say", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
     400, "invalid_request_error", "source"),
    ({"model": "test/say", "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, 400, "invalid_request_error", "server tool"),
    ({"model": "test/say", "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "tool"}}, 400,
     "invalid_request_error", "tool_choice.name"),
    ({"model": "nobody/nothing", "messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request_error",
     "nobody/nothing"),
    ({"model": "test/say", "max_tokens": 10_000_000, "messages": [{"role": "user", "content": "x"}]}, 404,
     "not_found_error", "No endpoints"),
]


@pytest.mark.parametrize(("body", "status", "kind", "names"), BAD)
def test_bad_input_gets_anthropic_errors(account: Account, body: dict[str, Any], status: int, kind: str,
                                         names: str) -> None:
    for path in ("/v1/messages", "/api/v1/messages"):
        response = httpx.post(account.gateway.url + path, json=body, headers={"x-api-key": account.api_key},
                              timeout=30)
        assert response.status_code == status, response.text
        error = response.json()
        assert error["type"] == "error" and error["error"]["type"] == kind and names in error["error"]["message"]
    assert account.generations() == [] and account.ledger_sum() == 5_000_000_000


def test_too_little_credit_is_a_billing_error(messages_gateway: Gateway) -> None:
    poor = messages_gateway.account(credits=0.0001, name="poor")
    with pytest.raises(anthropic_sdk.APIStatusError) as refused:
        claude(poor).messages.create(model="test/claude-echo", max_tokens=20_000,
                                     messages=[{"role": "user", "content": "x"}])
    assert refused.value.status_code == 402 and refused.value.body["error"]["type"] == "billing_error"  # type: ignore[index]
    assert poor.generations() == []


def test_authentication_and_body_errors_in_anthropic_shape(account: Account) -> None:
    url = account.gateway.url + "/v1/messages"
    body = {"model": "test/say", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(anthropic_sdk.AuthenticationError):
        anthropic_sdk.Anthropic(base_url=account.gateway.url, api_key="sk-wrong", max_retries=0).messages.create(**body)
    for headers, status, kind in (({}, 401, "authentication_error"),
                                  ({"x-api-key": account.management_key}, 403, "permission_error"),
                                  ({"x-api-key": account.api_key, "content-type": "application/json"}, 400,
                                   "invalid_request_error")):
        response = httpx.post(url, content=b"{not json" if status == 400 else json.dumps(body), headers=headers)
        assert response.status_code == status and response.json()["error"]["type"] == kind, response.text
    counted = httpx.post(url + "/count_tokens", json={"messages": []}, headers={"x-api-key": account.api_key})
    assert counted.status_code == 400 and counted.json()["error"]["type"] == "invalid_request_error"


def test_tool_choice_and_sampling_reach_an_anthropic_upstream(account: Account, anthropic: MockAnthropic) -> None:
    client = claude(account)
    ask = [{"role": "user", "content": "weather?"}]
    client.messages.create(model="test/claude-tool", max_tokens=100, tools=[WEATHER], messages=ask,
                           extra_body={"temperature": 0.2},  # this SDK version has no temperature argument
                           stop_sequences=["END", "STOP"], tool_choice={"type": "tool", "name": "get_weather"})
    sent = anthropic.requests[-1]
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"} and sent["temperature"] == 0.2
    assert sent["stop_sequences"] == ["END", "STOP"] and sent["max_tokens"] == 100
    client.messages.create(model="test/claude-tool", max_tokens=100, tools=[WEATHER], messages=ask,
                           tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert anthropic.requests[-1]["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_pings_keep_a_slow_stream_alive(account: Account) -> None:
    """test/late-stream sends its first token after 1.2 s; keepalive_seconds is 0.5."""
    with httpx.stream("POST", account.gateway.url + "/v1/messages", headers={"x-api-key": account.api_key},
                      json={"model": "test/late-stream", "max_tokens": 50, "stream": True,
                            "messages": [{"role": "user", "content": "slow one"}]}, timeout=30) as response:
        events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert events.count("ping") >= 2 and events[-1] == "message_stop"
    with claude(account).messages.stream(model="test/late-stream", max_tokens=50,
                                         messages=[{"role": "user", "content": "slow one"}]) as stream:
        assert stream.get_final_text() == "echo: slow one"
