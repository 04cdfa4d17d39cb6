"""The official openai SDK, pointed at routeway (/v1), against loopback upstreams."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Account


def test_chat(account: Account) -> None:
    reply = account.openai_client().chat.completions.create(
        model="test/echo", messages=[{"role": "user", "content": "hello there"}], max_tokens=50,
        extra_headers={"HTTP-Referer": "https://app.example", "X-Title": "Example App"})
    assert reply.id.startswith("gen-")
    assert reply.model == "test/echo"
    assert reply.choices[0].message.content == "echo: hello there"
    assert reply.choices[0].finish_reason == "stop"
    extra = reply.model_extra or {}
    assert extra["provider"] == "Mock Engine"
    assert reply.choices[0].model_extra["native_finish_reason"] == "stop"
    usage = reply.usage
    assert usage is not None and usage.completion_tokens == 3 and usage.prompt_tokens == 5
    # $1/M prompt and $2/M completion: 5 * 1e-6 + 3 * 2e-6
    assert usage.model_extra["cost"] == pytest.approx(11e-6)
    generation = httpx.get(account.gateway.api + "/generation", params={"id": reply.id},
                           headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
    assert generation["http_referer"] == "https://app.example"
    assert generation["app_title"] == "Example App"
    assert generation["total_cost"] == pytest.approx(11e-6)
    assert generation["streamed"] is False and generation["cancelled"] is False
    assert account.state()["total_usage"] == pytest.approx(11e-6)


def test_streamed_chat(account: Account) -> None:
    stream = account.openai_client().chat.completions.create(
        model="test/echo", messages=[{"role": "user", "content": "one two three"}], stream=True, max_tokens=50)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    assert usage_chunks[0].usage.completion_tokens == 4
    assert all(c.id == chunks[0].id and c.model == "test/echo" for c in chunks)


def test_reasoning_content_is_normalized(account: Account) -> None:
    reply = account.openai_client().chat.completions.create(
        model="test/reasoning", messages=[{"role": "user", "content": "hi"}], max_tokens=50)
    message = reply.choices[0].message.model_extra
    assert message["reasoning"] == "think think think "
    assert "reasoning_content" not in message
    assert reply.usage.completion_tokens_details.reasoning_tokens == 3


def test_models_list(account: Account) -> None:
    models = {m.id: m for m in account.openai_client().models.list()}
    hermes = models["nousresearch/hermes-4-70b"]
    assert hermes.model_extra["name"] == "Nous: Hermes 4 70B"
    assert hermes.model_extra["context_length"] == 131072
    assert hermes.model_extra["pricing"]["prompt"] == "0.00000013"
    assert hermes.model_extra["pricing"]["completion"] == "0.0000004"
    assert len(models) >= 30
