"""The Responses request translated into chat's, and the renderer's output items, without a server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest

from routeway.api.responses import chat_body
from routeway.api.responses_render import ResponsesRenderer, pack_reasoning
from routeway.errors import APIError
from routeway.exchange.events import Answer, Choice, Delta, Outcome
from routeway.transform.usage import UsageCounts
from routeway.wire.chat import parse_chat_request
from routeway.wire.responses import ResponsesRequest

SIGNED = [{"type": "reasoning.text", "text": "Let me think.", "signature": "sig-1", "format": "anthropic-claude-v1",
           "index": 0}]


def translate(**request: Any) -> dict[str, Any]:
    req = msgspec.json.decode(json.dumps({"model": "m", **request}), type=ResponsesRequest)
    body = chat_body(req)
    parse_chat_request(msgspec.json.encode(body))  # what chat_body writes is a valid chat request
    return body


def test_items_become_one_assistant_turn_per_reply() -> None:
    body = translate(instructions="Be brief.", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": pack_reasoning(SIGNED)},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Lyon"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
        {"role": "user", "content": "Thanks"}])
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": "Checking.", "reasoning_details": SIGNED, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {"role": "user", "content": "Thanks"}]


def test_request_settings_map_to_chat_fields() -> None:
    body = translate(input="hi", max_output_tokens=50, parallel_tool_calls=False, top_logprobs=2,
                     tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
                     tool_choice={"type": "function", "name": "f"}, reasoning={"effort": "high", "summary": "auto"},
                     text={"format": {"type": "json_schema", "name": "p", "schema": {"type": "object"}, "strict": True},
                           "verbosity": "low"}, safety_identifier="u1", stream=True)
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["max_tokens"] == 50 and body["parallel_tool_calls"] is False and body["stream"] is True
    assert body["logprobs"] is True and body["top_logprobs"] == 2 and body["user"] == "u1"
    assert body["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                                               "strict": True}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["reasoning"] == {"effort": "high", "summary": "auto"} and body["verbosity"] == "low"
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"},
                                                                              "strict": True}}


def test_reasoning_from_elsewhere_keeps_its_text_not_its_blob() -> None:
    body = translate(input=[{"role": "user", "content": "q"},
                            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Thought."}],
                             "encrypted_content": "gAAAAB-openai-blob"},
                            {"role": "assistant", "content": "A."}])
    assert body["messages"][1] == {"role": "assistant", "content": "A.", "reasoning_details": [
        {"type": "reasoning.text", "text": "Thought.", "format": "unknown", "index": 0}]}


@pytest.mark.parametrize(("request_", "param"), [
    ({"input": "hi", "store": True}, "store"),
    ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"input": "hi", "conversation": "conv_1"}, "conversation"),
    ({"input": []}, "input"),
    ({"input": [{"type": "computer_call"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}, "input[0].content[0]"),
    ({"input": "hi", "tool_choice": {"type": "web_search"}}, "tool_choice"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
])
def test_refusals_name_the_field(request_: dict[str, Any], param: str) -> None:
    with pytest.raises(APIError) as refused:
        translate(**request_)
    assert refused.value.status == 400 and refused.value.metadata["param"] == param


class Sink:
    """A request whose sent messages are kept (the renderer's whole answers go through finish)."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def test_whole_answer_items_and_usage() -> None:
    req = msgspec.json.decode(b'{"model": "m", "input": "x", "include": ["reasoning.encrypted_content"]}',
                              type=ResponsesRequest)
    renderer = ResponsesRenderer(Sink(), req, "gen-1-abc", 1.0)  # type: ignore[arg-type]
    message = {"role": "assistant", "content": "Hi", "reasoning": "Let me think.", "reasoning_details": SIGNED,
               "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    outcome = Outcome(id="gen-1-abc", model="m", provider="P", usage=UsageCounts(10, 5, reasoning=2, cached=3),
                      cost_nano=1_500, answer=Answer([Choice(0, message, {}, "tool_calls", "tool_use")]))
    response = asyncio.run(renderer.finish(outcome))
    assert response is not None
    body = json.loads(response.body)
    reasoning, text, call = body["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Let me think."}]
    assert reasoning["encrypted_content"] == pack_reasoning(SIGNED)
    assert text["content"][0]["text"] == "Hi" and call["call_id"] == "toolu_1" and call["arguments"] == "{}"
    assert body["status"] == "completed" and body["store"] is False
    assert body["usage"] == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                             "output_tokens": 5,
                             "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15, "cost": 1.5e-06}


def test_length_finish_is_incomplete() -> None:
    req = msgspec.json.decode(b'{"model": "m", "input": "x"}', type=ResponsesRequest)
    renderer = ResponsesRenderer(Sink(), req, "gen-1-abc", 1.0)  # type: ignore[arg-type]
    outcome = Outcome(id="gen-1-abc", model="m", provider="P", usage=None, cost_nano=0, answer=Answer(
        [Choice(0, {"role": "assistant", "content": "cut"}, {}, "length", "length")]))
    response = asyncio.run(renderer.finish(outcome))
    assert response is not None
    body = json.loads(response.body)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"


def test_streamed_deltas_of_the_wrong_type_are_not_rendered() -> None:
    """An upstream's delta fields are untrusted: odd types are skipped, never a failure mid-stream."""
    req = msgspec.json.decode(b'{"model": "m", "input": "x", "stream": true}', type=ResponsesRequest)
    sink = Sink()
    renderer = ResponsesRenderer(sink, req, "gen-1-abc", 1.0)  # type: ignore[arg-type]
    odd = [{"reasoning": 7, "reasoning_details": "x", "content": {"a": 1}},
           {"tool_calls": [5, {"index": [1], "id": 3, "function": "f"}]},
           {"tool_calls": [{"index": True, "function": {"name": ["n"], "arguments": {"a": 1}}}]},
           {"content": "fine"}]

    async def run() -> None:
        for fields in odd:
            await renderer.deltas([Delta(0, fields, {}, None, None)])
        await renderer.finish(Outcome(id="gen-1-abc", model="m", provider="P", usage=None, cost_nano=0))

    asyncio.run(run())
    frames = b"".join(m["body"] for m in sink.sent).split(b"\n\n")
    events = [json.loads(f.split(b"data: ", 1)[1]) for f in frames if b"data: " in f]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]
    assert final["type"] == "response.completed"
    assert [item["type"] for item in final["response"]["output"]] == ["function_call", "function_call", "message"]
    assert final["response"]["output"][-1]["content"][0]["text"] == "fine"


def test_slow_whole_answer_after_keepalives_and_a_held_charge() -> None:
    """A whole answer whose status line went out early (keepalive newlines) comes as the body; a charge the
    store could not record yet is said in ``warning``, the response itself completed."""
    req = msgspec.json.decode(b'{"model": "m", "input": "x"}', type=ResponsesRequest)
    sink = Sink()
    renderer = ResponsesRenderer(sink, req, "gen-1-abc", 1.0)  # type: ignore[arg-type]
    outcome = Outcome(id="gen-1-abc", model="m", provider="P", usage=UsageCounts(3, 2), cost_nano=7_000, held=True,
                      store_problem="disk full", answer=Answer([Choice(0, {"role": "assistant", "content": "ok"}, {},
                                                                       "stop", "stop")]))

    async def run() -> Any:
        await renderer.keepalive()
        await renderer.keepalive()
        return await renderer.finish(outcome)

    assert asyncio.run(run()) is None
    start, *bodies = sink.sent
    assert start["status"] == 200 and (b"x-generation-id", b"gen-1-abc") in start["headers"]
    assert [m["body"] for m in bodies[:2]] == [b"\n", b"\n"] and bodies[-1]["more_body"] is False
    body = json.loads(b"".join(m["body"] for m in bodies))
    assert body["status"] == "completed" and body["output"][0]["content"][0]["text"] == "ok"
    assert "disk full" in body["warning"] and "$0.000007" in body["warning"]
