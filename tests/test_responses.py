"""The OpenAI Responses API inbound, through the official openai SDK (``responses.create``, ``.stream``,
``.parse``): text, reasoning, tool calls over two turns and structured output, against a raw-Hermes
loopback upstream (routeway parses ``<think>`` and ``<tool_call>`` itself) and an Anthropic loopback
upstream (thinking signatures passed back through ``encrypted_content``); stateless (``store: true`` is
a 400); errors in the Responses shape, ``response.failed`` mid-stream; money and records the same as the
same request through chat completions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.responses import Response as OpenAIResponse, ResponseStreamEvent

from tests.conftest import Account, Gateway, start_gateway, stop_gateway
from tests.support.anthropic_upstream import KEY_ENV, MockAnthropic, anthropic_config
from tests.support.upstream import MockUpstream

WEATHER = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
STREAM_END = ("response.completed", "response.incomplete", "response.failed")


def sdk(gateway: Gateway, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0)


def streamed(client: openai.OpenAI, **request: Any) -> tuple[list[Any], Any]:
    """Every event of a streamed response and the final response, checking the frame every stream keeps:
    sequence numbers 0, 1, 2, …; created and in_progress first; one terminal event last."""
    with client.responses.stream(**request) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed" and all(e.type not in STREAM_END for e in events[:-1])
    return events, final


def items_as_input(response: Any) -> list[dict[str, Any]]:
    """A response's output items as the next turn's input (what a stateless client sends back)."""
    return [item.model_dump(exclude_none=True) for item in response.output]


# ---- raw Hermes upstream ---------------------------------------------------------------------------

def test_text_and_reasoning_from_a_raw_hermes_engine(account: Account) -> None:
    client = sdk(account.gateway, account.api_key)
    reply = client.responses.create(model="test/say-hermes", input="<think>\nThe user greets.\n</think>\n\nHello!",
                                    instructions="Be brief.", max_output_tokens=300)
    assert reply.status == "completed" and reply.output_text == "Hello!"
    reasoning, message = reply.output
    assert reasoning.type == "reasoning" and reasoning.content[0].text == "The user greets."
    assert message.type == "message" and message.role == "assistant"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens
    assert reply.model == "test/say-hermes" and reply.id.startswith("gen-")
    record = httpx.get(account.gateway.api + "/generation", params={"id": reply.id},
                       headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
    assert record["api"] == "responses" and record["tokens_completion"] == reply.usage.output_tokens


def test_streamed_text_and_reasoning_events(account: Account) -> None:
    events, final = streamed(sdk(account.gateway, account.api_key), model="test/say-hermes",
                             input="<think>\nThe user greets.\n</think>\n\nHello there, friend!", max_output_tokens=300)
    kinds = [e.type for e in events]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert text == "Hello there, friend!" and thought == "The user greets."
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_item.added", kinds.index(
        "response.reasoning_text.done"))  # the reasoning item closes before the message opens
    for kind in ("response.content_part.added", "response.output_text.done", "response.content_part.done",
                 "response.output_item.done"):
        assert kind in kinds
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == "Hello there, friend!" and done.item_id == final.output[1].id
    assert final.output_text == "Hello there, friend!" and final.usage.output_tokens > 0


def test_reasoning_summary_when_asked(account: Account) -> None:
    events, final = streamed(sdk(account.gateway, account.api_key), model="test/say-hermes",
                             input="<think>Short.</think>Done.", reasoning={"effort": "low", "summary": "auto"})
    assert "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta") == "Short."
    assert [e.type for e in events].count("response.reasoning_summary_part.added") == 1
    assert final.output[0].summary[0].text == "Short." and final.output_text == "Done."


def test_tool_calls_over_two_turns_with_a_raw_hermes_engine(account: Account, upstream: MockUpstream) -> None:
    client = sdk(account.gateway, account.api_key)
    question = {"role": "user", "content": "<think>Need weather.</think>\n" + CALL}
    first = client.responses.create(model="test/say-hermes", input=[question], tools=WEATHER,
                                    tool_choice="auto", parallel_tool_calls=False, max_output_tokens=300)
    call = first.output[-1]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id.startswith("call_")
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert "<tools>" in upstream.requests[-1]["messages"][0]["content"]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "18 C and sunny"}
    client.responses.create(model="test/say-hermes", input=[question, *items_as_input(first), output],
                            tools=WEATHER, max_output_tokens=300)
    sent = upstream.requests[-1]["messages"]
    assistant = next(m for m in sent if m["role"] == "assistant")
    assert "<tool_call>" in assistant["content"] and '"Paris"' in assistant["content"]
    assert sent[-1]["content"] == "<tool_response>\n18 C and sunny\n</tool_response>"


def test_streamed_tool_calls_with_a_raw_hermes_engine(account: Account) -> None:
    events, final = streamed(sdk(account.gateway, account.api_key), model="test/say-hermes",
                             input="<think>Two cities.</think>\n" + CALL + CALL.replace("Paris", "Lyon"),
                             tools=WEATHER, max_output_tokens=300)
    calls = [item for item in final.output if item.type == "function_call"]
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Lyon"]
    assert calls[0].call_id != calls[1].call_id
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == [{"city": "Paris"}, {"city": "Lyon"}]
    for call in calls:
        deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta" and e.item_id == call.id]
        assert "".join(deltas) == call.arguments


@pytest.mark.parametrize("stream", [False, True])
def test_unparsable_tool_call_fails_and_cut_thinking_is_incomplete(account: Account, stream: bool) -> None:
    client = sdk(account.gateway, account.api_key)

    def ask(text: str) -> Any:
        request = {"model": "test/say-hermes", "input": text, "tools": WEATHER, "max_output_tokens": 300}
        if not stream:
            return client.responses.create(**request)
        with client.responses.stream(**request) as events:
            return list(events)[-1].response

    broken = ask('<tool_call>{"name": "get_weather", "arguments": {"city": }</tool_call>')
    assert broken.status == "failed" and "malformed tool call JSON" in broken.error.message
    cut = ask("<think>Still thinking")
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output[0].type == "reasoning" and cut.output[0].status == "incomplete"


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_structured_output_through_responses_parse(account: Account, upstream: MockUpstream) -> None:
    client = sdk(account.gateway, account.api_key)
    for model in ("test/say", "test/say-hermes"):
        parsed = client.responses.parse(model=model, input='{"name": "Ada", "age": 36}', text_format=Person,
                                        max_output_tokens=200)
        assert parsed.output_parsed == Person(name="Ada", age=36)
    assert "JSON" in upstream.requests[-1]["messages"][0]["content"]  # raw Hermes: the JSON-mode prompt
    with pytest.raises(openai.APIStatusError) as invalid:
        client.responses.create(model="test/say", input="not json", max_output_tokens=200, text={"format": {
            "type": "json_schema", "name": "person", "schema": Person.model_json_schema(), "strict": True}})
    assert invalid.value.status_code == 502 and "not valid JSON" in invalid.value.body["message"]


@pytest.mark.parametrize("model", ["test/say-hermes", "test/midstream-error"])
@pytest.mark.parametrize("reasoning", [None, {"effort": "low", "summary": "detailed"}])
def test_every_event_and_response_holds_to_the_sdk_types(account: Account, model: str,
                                                        reasoning: dict[str, str] | None) -> None:
    """The SDK builds its models without validating; here each event and response is validated strictly
    against ``openai.types.responses`` (required fields, literals, item and part unions)."""
    events = pydantic.TypeAdapter(ResponseStreamEvent)
    body: dict[str, Any] = {"model": model, "input": "<think>Hm.</think>Hi!" + CALL, "tools": WEATHER,
                            "include": ["reasoning.encrypted_content"], "stream": True}
    if reasoning:
        body["reasoning"] = reasoning
    headers = {"authorization": f"Bearer {account.api_key}"}
    stream = httpx.post(account.gateway.api + "/responses", json=body, headers=headers, timeout=30)
    assert stream.headers["content-type"] == "text/event-stream"
    frames = [frame for frame in stream.text.split("\n\n") if frame.startswith("event: ")]
    kinds = set()
    for frame in frames:
        name, data = frame.split("\n", 1)
        event = events.validate_python(json.loads(data.removeprefix("data: ")))
        assert name == f"event: {event.type}"
        kinds.add(event.type)
    assert ("response.failed" if "midstream" in model else "response.completed") in kinds
    if "midstream" not in model:
        assert {"response.function_call_arguments.done", "response.output_text.done",
                "response.reasoning_summary_text.done" if reasoning else "response.reasoning_text.done"} <= kinds
    whole = httpx.post(account.gateway.api + "/responses", json={**body, "stream": False}, headers=headers, timeout=30)
    assert whole.status_code == 200
    response = OpenAIResponse.model_validate(whole.json())
    assert response.output and response.usage is not None


# ---- Anthropic upstream ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def claude_gateway(anthropic: MockAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("responses-anthropic")
    (root / "routeway.toml").write_text(anthropic_config(anthropic.base_url, (
        ("test/claude-echo", "claude-echo"), ("test/claude-tool", "claude-tool"), ("test/claude-agent", "claude-agent"))))
    gateway = start_gateway(root / "routeway.toml", root / "data", KEY_ENV)
    yield gateway
    stop_gateway(gateway)


@pytest.fixture()
def claude(claude_gateway: Gateway) -> openai.OpenAI:
    return sdk(claude_gateway, claude_gateway.account(credits=5).api_key)


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_signatures_round_trip_through_encrypted_content(claude: openai.OpenAI, anthropic: MockAnthropic,
                                                                   stream: bool) -> None:
    request: dict[str, Any] = {"model": "test/claude-tool", "input": "Weather in Paris?", "tools": WEATHER,
                               "reasoning": {"effort": "high"}, "max_output_tokens": 4000,
                               "include": ["reasoning.encrypted_content"]}
    first = streamed(claude, **request)[1] if stream else claude.responses.create(**request)
    assert anthropic.requests[-1]["thinking"] == {"type": "enabled", "budget_tokens": 3200}
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and reasoning.content[0].text == "Let me think."
    assert reasoning.encrypted_content and call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    follow = {**request, "model": "test/claude-echo", "input": ["Weather in Paris?", *items_as_input(first), output]}
    follow["input"][0] = {"role": "user", "content": "Weather in Paris?"}
    second = streamed(claude, **follow)[1] if stream else claude.responses.create(**follow)
    assistant, result = anthropic.requests[-1]["messages"][1:]
    assert assistant == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-abc123"},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]}
    assert result["content"] == [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"}]
    assert second.output_text == "echo: " and second.status == "completed"
    assert (second.usage.input_tokens, second.usage.output_tokens) == (16, 7)
    assert second.usage.input_tokens_details.cached_tokens == 4


def test_without_include_no_encrypted_content(claude: openai.OpenAI) -> None:
    reply = claude.responses.create(model="test/claude-echo", input="hi", reasoning={"effort": "low"},
                                    max_output_tokens=2000)
    assert reply.output[0].type == "reasoning" and reply.output[0].encrypted_content is None
    assert reply.output_text == "echo: hi"


def test_anthropic_streamed_text_events(claude: openai.OpenAI) -> None:
    events, final = streamed(claude, model="test/claude-echo", input=[{"role": "user", "content": "hello"}],
                             instructions="Be terse.")
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: hello"
    assert final.output_text == "echo: hello" and final.usage.output_tokens == 7


@pytest.mark.parametrize("stream", [False, True])
def test_an_agents_sdk_agent_calls_a_function_tool(claude_gateway: Gateway, anthropic: MockAnthropic,
                                                   stream: bool) -> None:
    """The OpenAI Agents SDK's default model (OpenAIResponsesModel) with routeway as its OpenAI client."""
    import agents

    asked: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"sunny in {city}"

    account = claude_gateway.account(credits=5)
    agents.set_default_openai_client(openai.AsyncOpenAI(base_url=claude_gateway.url + "/v1", api_key=account.api_key,
                                                        max_retries=0), use_for_tracing=False)
    agents.set_default_openai_api("responses")
    agents.set_tracing_disabled(True)
    agent = agents.Agent(name="weather", instructions="Say the weather.", model="test/claude-agent",
                         tools=[get_weather])

    # the default provider, told that OpenRouter-style ids ("author/slug") are model ids, not provider prefixes
    config = agents.RunConfig(model_provider=agents.MultiProvider(unknown_prefix_mode="model_id"))

    async def run() -> Any:
        if not stream:
            return await agents.Runner.run(agent, "Weather in Paris?", run_config=config)
        result = agents.Runner.run_streamed(agent, "Weather in Paris?", run_config=config)
        async for _ in result.stream_events():
            pass
        return result

    result = asyncio.run(run())
    assert asked == ["Paris"] and result.final_output == "done: sunny in Paris"
    sent = anthropic.requests[-1]
    assert sent["system"] == "Say the weather." and sent["tools"][0]["name"] == "get_weather"
    assert sent["messages"][-1]["content"][0]["content"] == "sunny in Paris"
    rows = claude_gateway.rows("SELECT api, status, streamed FROM generations WHERE account_id = ?", (account.id,))
    assert rows == [("responses", 200, int(stream))] * 2


# ---- statelessness and errors -----------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "param"), [({"store": True}, "store"),
                                              ({"previous_response_id": "resp_123"}, "previous_response_id")])
def test_stored_state_is_a_clear_400(account: Account, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(account.gateway, account.api_key).responses.create(model="test/say", input="hi", **extra)
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == param and error["type"] == "invalid_request_error"
    assert "keeps no responses" in error["message"] and error["code"] == 400
    assert account.generations() == [] and account.state()["total_usage_nano"] == 0


def test_bad_items_and_tools_are_400s_naming_the_field(account: Account) -> None:
    cases = [({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
             ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
             ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
             ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
             ({"input": [{"type": "reasoning", "summary": [], "encrypted_content": "rw1.!!"}]},
              "input[0].encrypted_content"),
             ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
             ({}, "input")]
    for body, param in cases:
        answer = httpx.post(account.gateway.api + "/responses", json={"model": "test/say", **body},
                            headers={"authorization": f"Bearer {account.api_key}"}, timeout=30)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["param"] == param, answer.text
    assert account.generations() == []


def test_upstream_failure_before_the_answer_is_an_error_status(account: Account) -> None:
    with pytest.raises(openai.APIStatusError) as failed:
        sdk(account.gateway, account.api_key).responses.create(model="test/fail-500", input="hi")
    assert failed.value.status_code == 502 and failed.value.body["type"] == "server_error"


def test_failure_mid_stream_is_response_failed(account: Account) -> None:
    with sdk(account.gateway, account.api_key).responses.stream(model="test/midstream-error", input="hi") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error" and failed.error.message
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert any(e.type == "response.output_text.delta" for e in events)
    [(_, status, _, _)] = account.generations()
    assert status != 200


# ---- the same money and record as chat completions --------------------------------------------------

@pytest.mark.e2e  # its gateways come through getfixturevalue, which the e2e marking does not see
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("upstream_kind", "model", "text"), [
    ("gateway", "test/say-hermes", "<think>Plan.</think>The answer is four."),
    ("claude_gateway", "test/claude-echo", "What is two and two?")], ids=["raw-hermes", "anthropic"])
def test_money_and_records_match_chat_completions(request: pytest.FixtureRequest, upstream_kind: str, model: str,
                                                  text: str, stream: bool) -> None:
    gateway: Gateway = request.getfixturevalue(upstream_kind)
    by_chat, by_responses = gateway.account(), gateway.account()
    chat = sdk(gateway, by_chat.api_key).chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        max_tokens=300, reasoning_effort="low", stream=stream)
    if stream:
        list(chat)
    answer = {"model": model, "instructions": "Be brief.", "input": text, "max_output_tokens": 300,
              "reasoning": {"effort": "low"}}
    if stream:
        streamed(sdk(gateway, by_responses.api_key), **answer)
    else:
        sdk(gateway, by_responses.api_key).responses.create(**answer)
    columns = ("model", "provider_name", "upstream_model", "tokens_prompt", "tokens_completion", "total_cost_nano",
               "native_tokens_reasoning", "native_tokens_cached", "finish_reason", "native_finish_reason", "streamed",
               "status", "usage_estimated", "api")
    rows = [gateway.rows(f"SELECT {', '.join(columns)} FROM generations WHERE account_id = ?", (a.id,))
            for a in (by_chat, by_responses)]
    assert len(rows[0]) == len(rows[1]) == 1
    assert rows[0][0][:-1] == rows[1][0][:-1] and rows[0][0][-1] == "chat" and rows[1][0][-1] == "responses"
    assert rows[0][0][5] > 0 and by_chat.ledger_sum() == by_responses.ledger_sum()
    assert by_chat.state()["total_usage_nano"] == by_responses.state()["total_usage_nano"] == rows[0][0][5]
