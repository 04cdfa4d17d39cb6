"""Raw-text Hermes endpoints end to end: <think> and <tool_call> split into OpenAI's shape, streamed and
not, through the official openai SDK; tools and history rendered into the Hermes conventions."""

from __future__ import annotations

import json

import httpx
import openai
import pydantic

from tests.conftest import Account
from tests.support.upstream import MockUpstream

WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}]
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris \\"Ville\\" {1}"}}\n</tool_call>'



def raw(account: Account, text: str, **extra: object) -> openai.types.chat.ChatCompletion:
    return account.openai_client().chat.completions.create(model="test/say-hermes", messages=[{"role": "user", "content": text}],
                                                max_tokens=300, **extra)


def test_think_is_split_from_the_answer(account: Account) -> None:
    reply = raw(account, "<think>\nThe user greets.\n</think>\n\nHello!")
    message = reply.choices[0].message
    assert message.content == "Hello!"
    assert message.model_extra["reasoning"] == "The user greets."
    assert message.model_extra["reasoning_details"][0]["text"] == "The user greets."
    plain = raw(account, "No thinking today.")
    assert plain.choices[0].message.content == "No thinking today." and "reasoning" not in plain.choices[0].message.model_extra


def test_tool_calls_after_thinking(account: Account, upstream: MockUpstream) -> None:
    reply = raw(account, "<think>Need weather.</think>\n" + CALL, tools=WEATHER)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": 'Paris "Ville" {1}'}
    sent = upstream.requests[-1]
    assert "tools" not in sent and "<tools>" in sent["messages"][0]["content"]
    assert '"get_weather"' in sent["messages"][0]["content"]


def test_streamed_tool_calls_through_the_openai_sdk(account: Account) -> None:
    stream = account.openai_client().chat.completions.create(
        model="test/say-hermes", messages=[{"role": "user", "content": "<think>Need weather.</think>\n" + CALL + CALL}],
        max_tokens=300, tools=WEATHER, stream=True)
    calls: dict[int, dict[str, str]] = {}
    reasoning, finish = "", None
    for chunk in stream:
        for choice in chunk.choices:
            reasoning += (choice.delta.model_extra or {}).get("reasoning") or ""
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += delta.id or ""
                entry["name"] += (delta.function.name or "") if delta.function else ""
                entry["arguments"] += (delta.function.arguments or "") if delta.function else ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls" and reasoning == "Need weather."
    assert sorted(calls) == [0, 1]
    assert [json.loads(c["arguments"]) for c in calls.values()] == [{"city": 'Paris "Ville" {1}'}] * 2
    assert calls[0]["id"] != calls[1]["id"] and all(c["name"] == "get_weather" for c in calls.values())


def test_malformed_and_unknown_tool_calls_are_errors(account: Account) -> None:
    broken = raw(account, '<tool_call>{"name": "get_weather", "arguments": {"city": }</tool_call>', tools=WEATHER)
    assert broken.choices[0].finish_reason == "error"
    assert "malformed tool call JSON" in broken.choices[0].model_extra["error"]["message"]
    unknown = raw(account, '<tool_call>{"name": "launch", "arguments": {}}</tool_call>', tools=WEATHER)
    assert unknown.choices[0].finish_reason == "error"
    assert 'unknown tool "launch"' in unknown.choices[0].model_extra["error"]["message"]
    generation = httpx.get(account.gateway.api + "/generation", params={"id": unknown.id},
                           headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
    assert generation["finish_reason"] == "error"


def test_unclosed_think_is_reasoning_with_length(account: Account) -> None:
    for stream in (False, True):
        body = {"model": "test/say-hermes", "messages": [{"role": "user", "content": "<think>Still going and go"}],
                "max_tokens": 300, "stream": stream}
        response = account.chat(body)
        if stream:
            events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
            reasoning = "".join(c["delta"].get("reasoning") or "" for e in events for c in e["choices"])
            finish = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
        else:
            message = response.json()["choices"][0]
            reasoning, finish = message["message"]["reasoning"], [message["finish_reason"]]
        assert reasoning == "Still going and go" and finish == ["length"]


def test_history_is_rendered_in_hermes_conventions(account: Account, upstream: MockUpstream) -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "reasoning": "secret plan",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "sunny"},
        {"role": "user", "content": "Thanks"},
    ]
    account.openai_client().chat.completions.create(model="test/say-hermes", messages=messages, max_tokens=50, tools=WEATHER)
    sent = upstream.requests[-1]["messages"]
    assistant = next(m for m in sent if m["role"] == "assistant")
    assert assistant["content"] == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert "tool_calls" not in assistant and "reasoning" not in assistant
    tool = next(m for m in sent if m["role"] == "tool")
    assert tool["content"] == '<tool_response>\n{"name": "get_weather", "content": "sunny"}\n</tool_response>'


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_openai_sdk_parse_with_a_pydantic_model(account: Account) -> None:
    parsed = account.openai_client().chat.completions.parse(model="test/say", response_format=Person, max_tokens=100,
                                                 messages=[{"role": "user", "content": '{"name": "Ada", "age": 36}'}])
    assert parsed.choices[0].message.parsed == Person(name="Ada", age=36)
    through_hermes = account.openai_client().chat.completions.parse(
        model="test/say-hermes", response_format=Person, max_tokens=100,
        messages=[{"role": "user", "content": '<think>JSON it is.</think>{"name": "Bo", "age": 7}'}])
    assert through_hermes.choices[0].message.parsed == Person(name="Bo", age=7)
