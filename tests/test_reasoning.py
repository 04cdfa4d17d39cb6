"""Reasoning: the unified request translated per dialect, and reasoning/reasoning_details in answers."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from routeway.catalog import Endpoint, ModelInfo
from routeway.config import ProviderConfig
from routeway.transform.reasoning import budget_tokens, wish
from routeway.transform.request import upstream_body
from routeway.wire.chat import ChatRequest

from tests.conftest import Account

MODEL = ModelInfo("a/m", "M", 0, "", 8192, None, Decimal(1), Decimal(1), "Other", None, ("text",), ("text",),
                  ("reasoning", "max_tokens"), None, {})


def body_for(dialect: str | None, **fields: object) -> dict:
    chat = msgspec.convert({"model": "a/m", "messages": [{"role": "user", "content": "x"}], **fields}, ChatRequest)
    endpoint = Endpoint(MODEL, ProviderConfig("p", "openai", "http://x"), "m", 1, 1, 8192, None, "unknown",
                        ("reasoning", "max_tokens"), dialect)
    return upstream_body(chat, endpoint, False)[0]


@pytest.mark.parametrize(("dialect", "fields", "expected"), [
    (None, {"reasoning": {"effort": "high"}}, {"reasoning_effort": "high"}),
    ("openai", {"reasoning": {"max_tokens": 800}, "max_tokens": 1000}, {"reasoning_effort": "high"}),
    ("openai", {"reasoning": {"enabled": False}}, {"reasoning_effort": "none"}),
    ("openai", {"reasoning_effort": "max"}, {"reasoning_effort": "xhigh"}),
    ("hermes", {"reasoning": {"enabled": True}}, {"chat_template_kwargs": {"thinking": True}}),
    ("hermes", {"reasoning": {"effort": "none"}}, {"chat_template_kwargs": {"thinking": False}}),
    ("qwen3", {"include_reasoning": True}, {"chat_template_kwargs": {"enable_thinking": True}}),
    ("deepseek", {"reasoning": {}}, {"chat_template_kwargs": {"thinking": True}}),
    ("llamacpp", {"reasoning": {"enabled": True}},
     {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_format": "deepseek"}),
    ("ollama", {"reasoning": {"effort": "low"}}, {"think": "low"}),
    ("ollama", {"reasoning": {"effort": "minimal"}}, {"think": True}),
    ("openrouter", {"reasoning": {"effort": "low", "exclude": True}},
     {"reasoning": {"enabled": True, "effort": "low", "exclude": True}}),
])
def test_reasoning_request_per_dialect(dialect: str | None, fields: dict, expected: dict) -> None:
    body = body_for(dialect, **fields)
    for key, value in expected.items():
        assert body[key] == value
    assert "reasoning" not in body or dialect == "openrouter"


def test_hermes_prompt_dialect_prepends_the_thinking_prompt() -> None:
    body = body_for("hermes-prompt", reasoning={"enabled": True}, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}])
    assert body["messages"][0]["content"].startswith("You are a deep thinking AI")
    assert body["messages"][0]["content"].endswith("Be brief.") and len(body["messages"]) == 2
    assert body_for("hermes-prompt")["messages"] == [{"role": "user", "content": "x"}]


def test_budgets() -> None:
    chat = msgspec.convert({"messages": [{"role": "user", "content": "x"}], "reasoning": {"effort": "high"}}, ChatRequest)
    assert budget_tokens(wish(chat), 10_000) == 8000
    assert budget_tokens(wish(chat), 1000, floor=1024) == 1024
    exact = msgspec.convert({"messages": [], "reasoning": {"max_tokens": 3000}}, ChatRequest)
    assert budget_tokens(wish(exact), 10_000) == 3000
    assert wish(msgspec.convert({"messages": [], "include_reasoning": False}, ChatRequest)).exclude


def test_answers_carry_reasoning_details_and_exclude_hides_them(account: Account) -> None:
    shown = account.chat({"model": "test/reasoning", "messages": [{"role": "user", "content": "q"}], "max_tokens": 9})
    message = shown.json()["choices"][0]["message"]
    assert message["reasoning"] == "think think think "
    assert message["reasoning_details"] == [{"type": "reasoning.text", "text": "think think think ", "format": "unknown",
                                             "index": 0}]
    hidden = account.chat({"model": "test/reasoning", "messages": [{"role": "user", "content": "q"}], "max_tokens": 9,
                           "reasoning": {"exclude": True}})
    message = hidden.json()["choices"][0]["message"]
    assert "reasoning" not in message and "reasoning_details" not in message
    usage = hidden.json()["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 3  # still counted and billed
    assert usage["cost"] == shown.json()["usage"]["cost"]
    streamed = account.chat({"model": "test/reasoning", "messages": [{"role": "user", "content": "q"}], "max_tokens": 9,
                             "stream": True})
    deltas = [c["delta"] for line in streamed.text.splitlines() if line.startswith("data: {")
              for c in json.loads(line[6:])["choices"]]
    assert "".join(d.get("reasoning") or "" for d in deltas) == "think think think "
    assert [d["reasoning_details"][0]["type"] for d in deltas if "reasoning_details" in d] == ["reasoning.text"]


@pytest.mark.parametrize("model", ["test/reasoning", "test/reasoning-reasoning", "test/reasoning-thinking"])
@pytest.mark.parametrize("stream", [False, True])
def test_every_upstream_reasoning_field_becomes_reasoning(account: Account, model: str, stream: bool) -> None:
    """reasoning_content (SGLang, llama.cpp, DeepSeek), reasoning (vLLM), thinking (Ollama)."""
    response = account.chat({"model": model, "messages": [{"role": "user", "content": "q"}], "max_tokens": 9,
                             "stream": stream})
    if stream:
        deltas = [c["delta"] for line in response.text.splitlines() if line.startswith("data: {")
                  for c in json.loads(line[6:])["choices"]]
        reasoning = "".join(d.get("reasoning") or "" for d in deltas)
        leftovers = [d for d in deltas if "reasoning_content" in d or "thinking" in d]
    else:
        message = response.json()["choices"][0]["message"]
        reasoning, leftovers = message["reasoning"], [k for k in message if k in ("reasoning_content", "thinking")]
    assert reasoning == "think think think " and not leftovers


def test_dialects_drop_what_their_wire_cannot_carry() -> None:
    params = ("max_tokens", "temperature", "seed", "repetition_penalty", "top_k", "reasoning")
    model = ModelInfo("a/m", "M", 0, "", 8192, None, Decimal(1), Decimal(1), "Other", None, ("text",), ("text",), params,
                      None, {})
    chat = msgspec.convert({"messages": [{"role": "user", "content": "x"}], "temperature": 0.5, "seed": 1,
                            "repetition_penalty": 1.1, "top_k": 5}, ChatRequest)
    for dialect, kept, dropped in (("anthropic", {"temperature", "top_k"}, ["seed", "repetition_penalty"]),
                                   ("ollama", {"temperature", "seed"}, ["top_k", "repetition_penalty"]),
                                   (None, {"temperature", "seed", "repetition_penalty", "top_k"}, [])):
        endpoint = Endpoint(model, ProviderConfig("p", "openai", "http://x"), "m", 1, 1, 8192, None, "unknown", params, dialect)
        body, was_dropped = upstream_body(chat, endpoint, False)
        assert kept <= set(body) and sorted(was_dropped) == sorted(dropped)
