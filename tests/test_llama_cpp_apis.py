"""A real engine behind text completions and embeddings: llama.cpp's OpenAI-compatible server
(llama-cpp-python) serving a tiny generated GGUF with mean pooling and embeddings on, so one engine serves
/v1/completions and /v1/embeddings; routeway's answers must be the engine's, billed on its own counts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway
from tests.support.tiny_gguf import free_port, llama_server, write_tiny_gguf

pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by `make test`")

CONFIG = """
[[providers]]
name = "llamacpp"
display_name = "llama.cpp"
kind = "openai"
base_url = "{base_url}"

[[models]]
id = "local/tiny"
context_length = 4096
prompt_price = "0.50"
completion_price = "1.50"
supported_parameters = ["max_tokens", "temperature", "seed"]

[[endpoints]]
model = "local/tiny"
provider = "llamacpp"
upstream_model = "tiny"
apis = ["chat", "completions"]

[[models]]
id = "local/tiny-embed"
context_length = 4096
prompt_price = "0.25"
completion_price = "0"
output_modalities = ["embeddings"]

[[endpoints]]
model = "local/tiny-embed"
provider = "llamacpp"
upstream_model = "tiny"
"""

SAMPLING = {"max_tokens": 12, "temperature": 0, "seed": 1}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("llama-apis")
    model = write_tiny_gguf(root / "tiny.gguf", mean_pooling=True)
    port = free_port()
    with llama_server(model, port, extra_args=["--embedding", "true"]):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def gateway(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("llama-apis-gateway")
    (root / "routeway.toml").write_text(CONFIG.format(base_url=engine))
    started = start_gateway(root / "routeway.toml", root / "data")
    yield started
    stop_gateway(started)


@pytest.fixture()
def client(gateway: Gateway) -> openai.OpenAI:
    account = gateway.account(credits=1)
    return account.openai_client()


def test_a_text_completion_is_the_engines(engine: str, client: openai.OpenAI) -> None:
    direct = httpx.post(engine + "/completions", json={"model": "tiny", "prompt": "Once upon", **SAMPLING},
                        timeout=60).json()
    reply = client.completions.create(model="local/tiny", prompt="Once upon", **SAMPLING)  # type: ignore[arg-type]
    assert reply.choices[0].text == direct["choices"][0]["text"] and reply.choices[0].text
    assert reply.usage is not None
    # llama-cpp-python claims one token more than max_tokens at a length stop: routeway bills within the bound
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        direct["usage"]["prompt_tokens"], min(direct["usage"]["completion_tokens"], SAMPLING["max_tokens"]))
    expected = (reply.usage.prompt_tokens * 0.5 + reply.usage.completion_tokens * 1.5) / 1e6
    assert reply.usage.model_extra["cost"] == pytest.approx(expected)
    streamed = client.completions.create(model="local/tiny", prompt="Once upon", stream=True,  # type: ignore[arg-type]
                                         **SAMPLING)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == direct["choices"][0]["text"]


def test_embeddings_are_the_engines(engine: str, client: openai.OpenAI) -> None:
    texts = ["hello world", "routeway"]
    direct = httpx.post(engine + "/embeddings", json={"model": "tiny", "input": texts}, timeout=60).json()
    reply = client.embeddings.create(model="local/tiny-embed", input=texts)  # base64, decoded by the SDK
    assert len(reply.data) == 2
    for mine, theirs in zip(reply.data, direct["data"], strict=True):
        assert mine.embedding == pytest.approx(theirs["embedding"], rel=1e-6, abs=1e-6)  # float32 on the wire
    floats = client.embeddings.create(model="local/tiny-embed", input=texts, encoding_format="float")
    assert [d.embedding for d in floats.data] == [d["embedding"] for d in direct["data"]]
    tokens = direct["usage"]["prompt_tokens"]
    assert reply.usage.prompt_tokens == tokens
    assert (reply.usage.model_extra or {})["cost"] == pytest.approx(tokens * 0.25 / 1e6)
