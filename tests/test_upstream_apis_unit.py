"""Which upstream APIs an endpoint serves (declared, validated at start-up), and the pieces text
completions and embeddings add: the /completions body, the chat-shaped reading of its answer, and the
embeddings answer read as untrusted input."""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

import pytest

from routeway.catalog import Catalog
from routeway.config import ConfigError, load_settings
from routeway.providers import UpstreamError, check_apis
from routeway.transform.embeddings import vectors, wire_vector
from routeway.transform.request import completion_body

PROVIDERS = """
[[providers]]
name = "engine"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "http://127.0.0.1:9/v1"
"""


def catalog(tmp_path: Path, extra: str) -> Catalog:
    path = tmp_path / "routeway.toml"
    path.write_text(PROVIDERS + extra)
    built = Catalog.build(load_settings(path, env={}, default_model=False))
    check_apis(built)
    return built


def test_endpoints_serve_their_models_apis_unless_they_declare_their_own(tmp_path: Path) -> None:
    built = catalog(tmp_path, """
[[endpoints]]
model = "openai/text-embedding-3-small"
provider = "engine"
upstream_model = "bge"

[[endpoints]]
model = "nousresearch/hermes-4-70b"
provider = "engine"
upstream_model = "hermes"
apis = ["chat", "completions"]

[[endpoints]]
model = "openai/gpt-3.5-turbo-instruct"
provider = "engine"
upstream_model = "instruct"
""")
    [embedder] = built.endpoints_for("openai/text-embedding-3-small")
    assert embedder.apis == ("embeddings",)
    assert built.endpoints_for("nousresearch/hermes-4-70b")[0].apis == ("chat", "completions")
    assert built.endpoints_for("openai/gpt-3.5-turbo-instruct")[0].apis == ("completions",)
    assert built.get("openai/text-embedding-3-small").output_modalities == ("embeddings",)  # type: ignore[union-attr]


@pytest.mark.parametrize(("endpoint", "message"), [
    ('apis = ["completions"]\nprovider = "claude"', "kind 'anthropic' does not serve completions"),
    ('apis = ["embeddings"]\nprovider = "claude"', "kind 'anthropic' does not serve embeddings"),
    ('apis = ["images"]\nprovider = "engine"', "unknown apis ['images']"),
    ('apis = []\nprovider = "engine"', "apis must be a non-empty list"),
    ('apis = "chat"\nprovider = "engine"', "apis must be a non-empty list"),
])
def test_an_endpoint_declaring_an_api_its_kind_does_not_speak_stops_start_up(
        tmp_path: Path, endpoint: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        catalog(tmp_path, f'[[endpoints]]\nmodel = "nousresearch/hermes-4-70b"\nupstream_model = "m"\n{endpoint}\n')


def test_the_completions_body_sends_the_prompt_and_drops_chat_only_fields() -> None:
    chat_body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 7, "stream": True,
                 "stream_options": {"include_usage": True}, "temperature": 0.5, "tools": [], "reasoning": {}}
    body = completion_body(chat_body, "Once upon", {"logprobs": 3, "echo": True})
    assert body == {"model": "m", "max_tokens": 7, "stream": True, "stream_options": {"include_usage": True},
                    "temperature": 0.5, "prompt": "Once upon", "logprobs": 3, "echo": True}


def answer(*items: Any) -> dict[str, Any]:
    return {"data": list(items)}


def test_vectors_come_back_in_input_order_and_base64_is_little_endian_float32() -> None:
    found = vectors(answer({"index": 1, "embedding": [3, 4.5]}, {"index": 0, "embedding": [1.0, -2.0]}), 2)
    assert [v.tolist() for v in found] == [[1.0, -2.0], [3.0, 4.5]]
    encoded = wire_vector(found[1], "base64")
    assert isinstance(encoded, str)
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (3.0, 4.5)
    assert wire_vector(found[0], "float") == [1.0, -2.0] == wire_vector(found[0], None)


@pytest.mark.parametrize("upstream", [
    answer({"index": 0, "embedding": [1.0]}),  # one vector for two inputs
    answer({"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}),  # an index twice
    answer({"index": 0, "embedding": [1.0]}, {"index": 5, "embedding": [2.0]}),  # an index out of range
    answer({"index": 0, "embedding": [1.0]}, {"index": True, "embedding": [2.0]}),
    answer({"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": ["x"]}),
    answer({"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": []}),
    answer({"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [float("nan")]}),
    answer({"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1e309]}),
    answer({"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": "AAAA"}),
    answer({"index": 0, "embedding": [1.0]}, 7),
    {"data": None},
])
def test_a_malformed_embeddings_answer_is_an_upstream_error(upstream: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError) as failed:
        vectors(upstream, 2)
    assert failed.value.status == 502 and failed.value.retryable
