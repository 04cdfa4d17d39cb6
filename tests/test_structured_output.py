"""response_format: native, llama.cpp's form or the Hermes JSON-mode prompt; answers checked against
the schema; response-healing; strict answers are valid or an error."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Account
from tests.support.upstream import MockUpstream

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def fmt(strict: bool = True) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": strict}}


def say(account: Account, text: str, model: str = "test/say", **extra: object):  # type: ignore[no-untyped-def]
    return account.chat({"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 200, **extra})


def test_valid_answer_passes_and_format_reaches_the_engine(account: Account, upstream: MockUpstream) -> None:
    response = say(account, '{"name": "Ada", "age": 36}', response_format=fmt())
    assert response.status_code == 200
    assert json.loads(response.json()["choices"][0]["message"]["content"]) == {"name": "Ada", "age": 36}
    assert upstream.requests[-1]["response_format"]["json_schema"]["schema"] == SCHEMA


def test_response_healing_repairs_fences_commas_and_truncation(account: Account) -> None:
    heal = [{"id": "response-healing"}]
    fenced = say(account, 'Here you go:\n```json\n{"name": "Ada", "age": 36,}\n```', response_format=fmt(), plugins=heal)
    assert fenced.status_code == 200
    assert json.loads(fenced.json()["choices"][0]["message"]["content"]) == {"name": "Ada", "age": 36}
    cut = say(account, '{"name": "Ada", "age": 36', response_format={"type": "json_object"}, plugins=heal)
    assert json.loads(cut.json()["choices"][0]["message"]["content"]) == {"name": "Ada", "age": 36}


def test_strict_answer_that_stays_invalid_is_an_error(account: Account) -> None:
    response = say(account, '{"name": "Ada"}', response_format=fmt())
    assert response.status_code == 502
    error = response.json()["error"]
    assert "does not match the schema" in error["message"] and "age" in error["message"]
    assert error["metadata"]["error_type"] == "invalid_response"
    [(_, status, cost, _)] = account.generations()
    assert status == 502 and cost > 0  # the tokens were produced upstream, and are billed


def test_loose_answer_that_is_invalid_comes_with_an_error_note(account: Account) -> None:
    response = say(account, "not json at all", response_format=fmt(strict=False))
    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["message"]["content"] == "not json at all"
    assert "not valid JSON" in choice["error"]["message"]


def test_streamed_strict_answer_is_checked_at_the_end(account: Account) -> None:
    ok = say(account, '{"name": "Ada", "age": 36}', response_format=fmt(), stream=True)
    assert '"error"' not in ok.text
    bad = say(account, '{"name": 7, "age": 36}', response_format=fmt(), stream=True)
    errors = [json.loads(line[6:]) for line in bad.text.splitlines() if line.startswith("data: {") and '"error"' in line]
    assert len(errors) == 1 and "schema" in errors[0]["error"]["message"]
    assert errors[0]["choices"][0]["finish_reason"] == "error"


def test_invalid_schema_is_a_400_before_any_upstream_call(account: Account) -> None:
    response = say(account, "{}", response_format={"type": "json_schema",
                                                   "json_schema": {"name": "x", "schema": {"type": "nonsense"}}})
    assert response.status_code == 400 and "not a valid JSON Schema" in response.json()["error"]["message"]
    assert account.generations() == []


def test_raw_hermes_endpoint_gets_the_json_mode_prompt(account: Account, upstream: MockUpstream) -> None:
    response = say(account, '{"name": "Ada", "age": 36}', model="test/say-hermes", response_format=fmt())
    assert response.status_code == 200
    sent = upstream.requests[-1]
    assert "response_format" not in sent
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][0]["content"].startswith("You are a helpful assistant that answers in JSON.")
    assert json.dumps(SCHEMA) in sent["messages"][0]["content"]


def test_llamacpp_endpoint_gets_json_object_with_schema(account: Account, upstream: MockUpstream) -> None:
    say(account, '{"name": "Ada", "age": 36}', model="test/say-llamacpp", response_format=fmt())
    assert upstream.requests[-1]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_endpoint_without_structured_output_is_not_eligible(account: Account) -> None:
    response = say(account, "{}", model="test/fallback", response_format=fmt())
    assert response.status_code == 404 and "no response_format support" in response.json()["error"]["message"]


@pytest.mark.parametrize("text", ["```json\n[1, 2,]\n```", 'x {"a": "b}", "c": [1, {"d": 2}]} y'])
def test_repair_unit(text: str) -> None:
    from routeway.transform.structured import repair
    assert json.loads(repair(text) or "null") is not None
