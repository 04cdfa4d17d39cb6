"""The Messages translation and renderer without a server: Anthropic blocks into routeway's internal request,
normalized answers back into Anthropic blocks, stop reasons and usage."""

from __future__ import annotations

import json

import msgspec
import pytest

from routeway.api.messages_render import message_blocks, stop_reason, usage
from routeway.api.messages_request import to_chat
from routeway.errors import APIError
from routeway.transform.usage import UsageCounts
from routeway.wire.messages import parse_messages_request


def chat_of(body: dict[str, object]) -> dict[str, object]:
    return msgspec.to_builtins(to_chat(parse_messages_request(json.dumps(body).encode())))  # type: ignore[no-any-return]


def test_request_fields_map_to_routeway_parameters() -> None:
    chat = chat_of({"model": "m", "max_tokens": 900, "stop_sequences": ["X"], "temperature": 0.3, "top_k": 5,
                    "thinking": {"type": "enabled", "budget_tokens": 2048}, "metadata": {"user_id": "u1"},
                    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
                    "tools": [{"name": "t", "input_schema": {"type": "object"}}], "models": ["a", "b"],
                    "provider": {"order": ["mock"]}, "messages": [{"role": "user", "content": "hi"}]})
    assert chat["max_tokens"] == 900 and chat["stop"] == ["X"] and chat["temperature"] == 0.3 and chat["top_k"] == 5
    assert chat["reasoning"] == {"max_tokens": 2048} and chat["user"] == "u1"
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["tools"] == [{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}]
    assert chat["models"] == ["a", "b"] and chat["provider"] == {"order": ["mock"]}
    assert chat_of({"model": "m", "thinking": {"type": "disabled"},
                    "messages": [{"role": "user", "content": "x"}]})["reasoning"] == {"enabled": False}
    named = chat_of({"model": "m", "tools": [{"name": "t"}], "tool_choice": {"type": "tool", "name": "t"},
                     "messages": [{"role": "user", "content": "x"}]})
    assert named["tool_choice"] == {"type": "function", "function": {"name": "t"}}


def test_history_blocks_become_chat_messages_in_order() -> None:
    chat = chat_of({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Hm.", "signature": "s1"}, {"type": "redacted_thinking", "data": "xx"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": "P"}},
            {"type": "tool_use", "id": "t2", "name": "w", "input": {"c": "L"}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "both done"},
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sun"}]},
            {"type": "tool_result", "tool_use_id": "t2", "content": "rain", "is_error": False}]}]})
    user, assistant, first, second, after = chat["messages"]  # type: ignore[misc]
    assert user == {"role": "user", "content": "weather?"}
    assert assistant["content"] == "Checking." and assistant["reasoning"] == "Hm."
    assert assistant["reasoning_details"] == [
        {"type": "reasoning.text", "text": "Hm.", "format": "anthropic-claude-v1", "index": 0, "signature": "s1"},
        {"type": "reasoning.encrypted", "data": "xx", "format": "anthropic-claude-v1", "index": 1}]
    assert [c["id"] for c in assistant["tool_calls"]] == ["t1", "t2"]
    assert json.loads(assistant["tool_calls"][1]["function"]["arguments"]) == {"c": "L"}
    assert first == {"role": "tool", "tool_call_id": "t1", "content": "sun"}
    assert second == {"role": "tool", "tool_call_id": "t2", "content": "rain"}
    assert after == {"role": "user", "content": [{"type": "text", "text": "both done"}]}


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "assistant", "content": [{"type": "image", "source": {}}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "x"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages[0].content[0]"),
    ({"system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]}, "system[0]"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"name": "t", "type": "bash_20250124"}]}, "tools[0].type"),
])
def test_untranslatable_input_is_a_400_naming_it(body: dict[str, object], param: str) -> None:
    with pytest.raises(APIError) as refused:
        chat_of({"model": "m", **body})
    assert refused.value.status == 400 and refused.value.metadata["param"] == param


def test_answers_become_anthropic_blocks() -> None:
    blocks = message_blocks({"content": "Hi", "reasoning": "Hm.", "tool_calls": [
        {"id": "c1", "function": {"name": "w", "arguments": '{"c": 1}'}},
        {"id": "c2", "function": {"name": "w", "arguments": "not json"}}]})
    assert blocks == [{"type": "thinking", "thinking": "Hm.", "signature": ""}, {"type": "text", "text": "Hi"},
                      {"type": "tool_use", "id": "c1", "name": "w", "input": {"c": 1}},
                      {"type": "tool_use", "id": "c2", "name": "w", "input": {}}]
    signed = message_blocks({"content": None, "reasoning": "Hm.", "reasoning_details": [
        {"type": "reasoning.text", "text": "Hm.", "signature": "s"}, {"type": "reasoning.encrypted", "data": "d"}]})
    assert signed == [{"type": "thinking", "thinking": "Hm.", "signature": "s"},
                      {"type": "redacted_thinking", "data": "d"}]


def test_stop_reasons_and_usage() -> None:
    assert [stop_reason(f, None) for f in ("stop", "length", "tool_calls", "content_filter", None)] == [
        "end_turn", "max_tokens", "tool_use", "refusal", "end_turn"]
    assert stop_reason("stop", "stop_sequence") == "stop_sequence"
    assert usage(UsageCounts(prompt=16, completion=7, cached=4)) == {
        "input_tokens": 12, "output_tokens": 7, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}
