"""Text completions and embeddings through the official openai SDK, against loopback upstreams that speak
OpenAI's /v1/completions and /v1/embeddings: fallbacks, exact charges by the answering endpoint's prices,
the generation record's ``api``, and the 404 that names the models that can serve a request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openrouter import OpenRouter
from openrouter.utils import RetryConfig

from tests.conftest import Account, Gateway, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream

ORDER = {"provider": {"order": ["mock", "mock-b"]}}  # the failing endpoint first, then the one that answers

EXTRA = """
[[models]]
id = "test/instruct"
context_length = 4096
prompt_price = "1.00"
completion_price = "2.00"
supported_parameters = ["max_tokens", "temperature", "stop", "logprobs"]
apis = ["completions"]

[[endpoints]]
model = "test/instruct"
provider = "mock"
upstream_model = "fail-500#instruct"
prompt_price = "3.00"
completion_price = "5.00"

[[endpoints]]
model = "test/instruct"
provider = "mock-b"
upstream_model = "echo"

[[models]]
id = "test/instruct-hermes"
context_length = 4096
prompt_price = "1.00"
completion_price = "2.00"
supported_parameters = ["max_tokens"]

[[endpoints]]
model = "test/instruct-hermes"
provider = "mock"
upstream_model = "echo"
dialect = "hermes"
apis = ["completions"]

[[models]]
id = "test/embed"
context_length = 512
prompt_price = "0.10"
completion_price = "0"
output_modalities = ["embeddings"]
supported_parameters = ["dimensions"]

[[endpoints]]
model = "test/embed"
provider = "mock"
upstream_model = "fail-500#embed"
prompt_price = "0.50"

[[endpoints]]
model = "test/embed"
provider = "mock-b"
upstream_model = "embed"
prompt_price = "0.20"

[[models]]
id = "test/embed-estimated"
context_length = 512
prompt_price = "1.00"
completion_price = "0"
output_modalities = ["embeddings"]

[[endpoints]]
model = "test/embed-estimated"
provider = "mock"
upstream_model = "embed-no-usage"

[[models]]
id = "test/embed-short"
context_length = 512
prompt_price = "1.00"
completion_price = "0"
output_modalities = ["embeddings"]

[[endpoints]]
model = "test/embed-short"
provider = "mock"
upstream_model = "embed-short"

[[endpoints]]
model = "test/embed-short"
provider = "mock-b"
upstream_model = "embed"
"""


@pytest.fixture(scope="module")
def apis_gateway(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("apis")
    gateway = start_gateway(write_config(root / "routeway.toml", upstream.base_url, EXTRA), root / "data")
    yield gateway
    stop_gateway(gateway)


@pytest.fixture()
def user(apis_gateway: Gateway) -> Account:
    return apis_gateway.account(credits=5)



def record(account: Account, generation_id: str) -> dict[str, Any]:
    answer = httpx.get(account.gateway.api + "/generation", params={"id": generation_id},
                       headers={"authorization": f"Bearer {account.api_key}"})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def test_text_completion_falls_back_and_is_charged_by_the_answering_endpoint(
        user: Account, upstream: MockUpstream) -> None:
    reply = user.openai_client().completions.create(model="test/instruct", prompt="hello there", max_tokens=20, logprobs=2,
                                         extra_body=ORDER)
    assert reply.object == "text_completion" and reply.id.startswith("gen-")
    [choice] = reply.choices
    assert choice.text == " echo: hello there"
    assert choice.finish_reason == "length"
    assert choice.logprobs is not None and choice.logprobs.tokens == ["echo:", "hello", "there"]
    sent = upstream.requests[-1]
    assert sent["prompt"] == "hello there" and "messages" not in sent and sent["logprobs"] == 2
    assert sent["model"] == "echo" and sent["max_tokens"] == 20
    # mock-b answers at the model's $1/M prompt, $2/M completion: 2 prompt and 3 completion tokens
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (2, 3)
    assert reply.usage.model_extra["cost"] == pytest.approx(8e-6)
    stored = record(user, reply.id)
    assert stored["api"] == "completions" and stored["provider_slug"] == "mock-b"
    assert [r["status"] for r in stored["provider_responses"]] == [500, 200]
    assert user.gateway.rows("SELECT total_cost_nano, api FROM generations WHERE id = ?", (reply.id,)) == [
        (8000, "completions")]
    assert user.ledger_sum() == 5_000_000_000 - 8000


def test_streamed_text_completion(user: Account) -> None:
    stream = user.openai_client().completions.create(model="test/instruct", prompt="a b", max_tokens=10, stream=True,
                                          stream_options={"include_usage": True}, extra_body=ORDER)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == " echo: a b"
    assert all(c.object == "text_completion" for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (2, 3)
    assert record(user, chunks[0].id)["api"] == "completions"
    assert user.ledger_sum() == 5_000_000_000 - 8000


def test_a_model_without_a_completions_endpoint_is_a_404_naming_those_with_one(user: Account) -> None:
    with pytest.raises(openai.NotFoundError) as refused:
        user.openai_client().completions.create(model="test/echo", prompt="hi", max_tokens=5)
    error = refused.value.body
    assert isinstance(error, dict) and "POST /completions" in error["message"] and "test/instruct" in error["message"]
    assert "test/instruct via mock, mock-b" in error["message"]
    assert "test/instruct" in error["metadata"]["availability"]["serving_models"]
    assert {"model": "test/instruct", "provider": "mock-b"} in error["metadata"]["availability"]["serving_endpoints"]
    # and a completions-only model takes no chat: its endpoints do not serve it
    with pytest.raises(openai.NotFoundError) as no_chat:
        user.openai_client().chat.completions.create(model="test/instruct", messages=[{"role": "user", "content": "hi"}])
    assert "does not serve chat" in str(no_chat.value)
    # a catalog model nobody serves yet gets routing's own answer: how to add a provider
    with pytest.raises(openai.InternalServerError) as unserved:
        user.openai_client().completions.create(model="anthropic/claude-sonnet-4", prompt="hi", max_tokens=5)
    assert unserved.value.status_code == 503 and "No provider serves" in str(unserved.value)
    assert user.generations() == [] and user.ledger_sum() == 5_000_000_000


def test_embeddings_base64_with_dimensions_fall_back_and_are_charged_on_input_tokens(
        user: Account, upstream: MockUpstream) -> None:
    # the SDK asks for base64 unless told otherwise, and decodes it into floats
    reply = user.openai_client().embeddings.create(model="test/embed", input=["one two", "three"], dimensions=6,
                                        extra_body=ORDER)
    assert [d.embedding for d in reply.data] == [[7.0, 0.0, 0.5, -1.0, 0.25, 0.25], [5.0, 1.0, 0.5, -1.0, 0.25, 0.25]]
    assert [d.index for d in reply.data] == [0, 1]
    sent = upstream.requests[-1]
    assert sent["encoding_format"] == "float" and sent["dimensions"] == 6 and sent["input"] == ["one two", "three"]
    # mock-b's $0.20/M on 3 input tokens, nothing for output
    assert reply.usage.prompt_tokens == 3 and reply.usage.total_tokens == 3
    assert (reply.usage.model_extra or {})["cost"] == pytest.approx(0.6e-6)
    stored = record(user, reply.id)
    assert stored["api"] == "embeddings" and stored["provider_slug"] == "mock-b"
    assert stored["tokens_prompt"] == 3 and stored["tokens_completion"] == 0
    assert [r["status"] for r in stored["provider_responses"]] == [500, 200]
    assert user.ledger_sum() == 5_000_000_000 - 600


def test_embeddings_as_floats_of_token_ids(user: Account, upstream: MockUpstream) -> None:
    reply = user.openai_client().embeddings.create(model="test/embed", input=[[1, 2, 3], [4, 5]], encoding_format="float",
                                        extra_body=ORDER)
    assert [d.embedding for d in reply.data] == [[3.0, 0.0, 0.5, -1.0], [2.0, 1.0, 0.5, -1.0]]
    assert upstream.requests[-1]["input"] == [[1, 2, 3], [4, 5]]
    assert reply.usage.prompt_tokens == 5
    assert user.ledger_sum() == 5_000_000_000 - 1000


def test_embeddings_without_upstream_usage_are_estimated_and_charged(user: Account) -> None:
    reply = user.openai_client().embeddings.create(model="test/embed-estimated", input="four words in here")
    assert reply.data[0].embedding == [18.0, 0.0, 0.5, -1.0]
    # routeway's estimate (transform/tokens.py): "four" "wo|rds" "in" "here", at $1/M
    assert reply.usage.prompt_tokens == 5
    rows = user.gateway.rows("SELECT tokens_prompt, usage_estimated, total_cost_nano FROM generations WHERE id = ?",
                             (reply.id,))
    assert rows == [(5, 1, 5000)]


def test_an_answer_with_a_vector_missing_falls_back(user: Account) -> None:
    reply = user.openai_client().embeddings.create(model="test/embed-short", input=["a", "b"], encoding_format="float",
                                        extra_body=ORDER)
    assert len(reply.data) == 2
    stored = record(user, reply.id)
    assert stored["provider_slug"] == "mock-b"
    assert "2 inputs" in stored["provider_responses"][0]["error"]


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "test/embed", "input": []}, "input"),
    ({"model": "test/embed", "input": ""}, "input"),
    ({"model": "test/embed", "input": [1.5]}, "input"),
    ({"model": "test/embed", "input": [[1, -2]]}, "input"),
    ({"model": "test/embed", "input": ["a", 3]}, "input"),
    ({"model": "test/embed", "input": "a", "dimensions": 0}, "dimensions"),
    ({"model": "test/embed", "input": "a", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "a"}, "model"),
])
def test_bad_embeddings_requests_are_a_400_naming_the_field(user: Account, body: dict[str, Any], param: str) -> None:
    answer = httpx.post(user.gateway.api + "/embeddings", json=body, headers={"authorization": f"Bearer {user.api_key}"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["metadata"]["param"] == param
    assert user.generations() == []


def test_embeddings_need_an_embeddings_endpoint(user: Account) -> None:
    with pytest.raises(openai.NotFoundError) as refused:
        user.openai_client().embeddings.create(model="test/echo", input="hi")
    assert "POST /embeddings" in str(refused.value) and "test/embed" in str(refused.value)
    with pytest.raises(openai.NotFoundError) as no_chat:
        user.openai_client().chat.completions.create(model="test/embed", messages=[{"role": "user", "content": "hi"}])
    assert "does not serve chat (it serves embeddings)" in str(no_chat.value)


def test_embedding_models_are_listed_apart(apis_gateway: Gateway) -> None:
    listed = {m["id"] for m in httpx.get(apis_gateway.api + "/embeddings/models").json()["data"]}
    assert {"test/embed", "openai/text-embedding-3-small"} <= listed and "test/echo" not in listed
    default = {m["id"] for m in httpx.get(apis_gateway.api + "/models").json()["data"]}
    assert "test/echo" in default and "test/embed" not in default
    embeddings = httpx.get(apis_gateway.api + "/models", params={"output_modalities": "embeddings"}).json()["data"]
    assert {m["id"] for m in embeddings} == listed
    assert all(m["architecture"]["output_modalities"] == ["embeddings"] for m in embeddings)


def test_the_model_page_shows_an_embedding_models_route_and_usage(user: Account) -> None:
    reply = user.openai_client().embeddings.create(model="test/embed", input="page view", extra_body=ORDER)
    assert reply.usage.prompt_tokens == 2
    page = httpx.get(user.gateway.url + "/models/test/embed")
    assert page.status_code == 200
    assert "/api/v1/embeddings" in page.text and "client.embeddings.create" in page.text
    assert "/api/v1/chat/completions" not in page.text
    instruct = httpx.get(user.gateway.url + "/models/test/instruct").text
    assert "/api/v1/completions" in instruct and "client.completions.create" in instruct


def test_the_openrouter_sdk_embeds_and_lists_embedding_models(user: Account) -> None:
    client = OpenRouter(api_key=user.api_key, server_url=user.gateway.api, retry_config=RetryConfig("none", None, False))
    result = client.embeddings.generate(model="test/embed", input=["one two"], dimensions=5,
                                        provider={"order": ["mock", "mock-b"]})
    assert [d.embedding for d in result.data] == [[7.0, 0.0, 0.5, -1.0, 0.25]]
    assert result.usage is not None and result.usage.prompt_tokens == 2
    listed = {m.id for m in client.embeddings.list_models().result.data}
    assert "test/embed" in listed and "test/echo" not in listed


@pytest.mark.parametrize("stream", [False, True])
def test_a_completion_comes_back_as_the_engine_wrote_it_whatever_its_dialect(user: Account, stream: bool) -> None:
    """A raw Hermes endpoint's chat answers are split into reasoning and tool calls; a text completion is
    the prompt's continuation, so its <think> and <tool_call> text stays text."""
    prompt = '<think>hmm</think> <tool_call>{"name": "f", "arguments": {}}</tool_call>'
    if stream:
        chunks = user.openai_client().completions.create(model="test/instruct-hermes", prompt=prompt, max_tokens=50, stream=True)
        text = "".join(c.choices[0].text for c in chunks if c.choices)
    else:
        text = user.openai_client().completions.create(model="test/instruct-hermes", prompt=prompt, max_tokens=50).choices[0].text
    assert text == " echo: " + prompt
