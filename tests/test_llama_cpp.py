"""A real engine upstream: llama.cpp's OpenAI-compatible server (llama-cpp-python) serving a tiny
generated GGUF, with chat and streaming going end to end through routeway."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway
from tests.support.tiny_gguf import free_port, llama_server, write_tiny_gguf

pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by `make test`")

CONFIG = """
[server]
keepalive_seconds = 2

[[providers]]
name = "llamacpp"
display_name = "llama.cpp"
kind = "openai"
base_url = "{base_url}"

[[models]]
id = "local/tiny"
name = "Local: Tiny"
context_length = 4096
prompt_price = "0.50"
completion_price = "1.50"
supported_parameters = ["max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "response_format"]

[[endpoints]]
model = "local/tiny"
provider = "llamacpp"
upstream_model = "tiny"
quantization = "fp32"
dialect = "llamacpp"

# The same engine as a raw Hermes endpoint, with a grammar that makes the noise model write exact Hermes text
[[models]]
id = "local/tiny-hermes"
name = "Local: Tiny as Hermes"
context_length = 4096
supported_parameters = ["max_tokens", "reasoning", "tools"]

[[endpoints]]
model = "local/tiny-hermes"
provider = "llamacpp"
upstream_model = "tiny"
dialect = "hermes"
extra_body = {{ grammar = 'root ::= "<think>Look it up.</think>\\n<tool_call>\\n{{\\"name\\": \\"get_weather\\", \\"arguments\\": {{\\"city\\": \\"Paris\\"}}}}\\n</tool_call>"' }}
"""

REQUEST = {"messages": [{"role": "user", "content": "Say something."}], "max_tokens": 24, "temperature": 0, "seed": 1}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("llama")
    model = write_tiny_gguf(root / "tiny.gguf")
    port = free_port()
    with llama_server(model, port):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def local_gateway(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("llama-gateway")
    config = root / "routeway.toml"
    config.write_text(CONFIG.format(base_url=engine))
    gateway = start_gateway(config, root / "data")
    yield gateway
    stop_gateway(gateway)


def test_chat_through_routeway_matches_the_engine(engine: str, local_gateway: Gateway) -> None:
    direct = httpx.post(engine + "/chat/completions", json={"model": "tiny", **REQUEST}, timeout=60).json()
    account = local_gateway.account(credits=1)
    client = account.openai_client()
    reply = client.chat.completions.create(model="local/tiny", **REQUEST)
    assert reply.choices[0].message.content == direct["choices"][0]["message"]["content"]
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens == direct["usage"]["completion_tokens"] > 0
    assert reply.usage.prompt_tokens == direct["usage"]["prompt_tokens"]
    [(estimated, tokens)] = local_gateway.rows(
        "SELECT usage_estimated, native_tokens_completion FROM generations WHERE id = ?", (reply.id,))
    assert estimated == 0 and tokens == reply.usage.completion_tokens
    expected = (reply.usage.prompt_tokens * 0.5 + reply.usage.completion_tokens * 1.5) / 1e6
    assert reply.usage.model_extra["cost"] == pytest.approx(expected, abs=1e-9)


def test_stream_through_routeway_matches_the_engine(engine: str, local_gateway: Gateway) -> None:
    direct = ""
    with httpx.stream("POST", engine + "/chat/completions", timeout=60,
                      json={"model": "tiny", "stream": True, **REQUEST}) as response:
        import json
        for line in response.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    direct += choice["delta"].get("content") or ""
    account = local_gateway.account(credits=1)
    client = account.openai_client()
    chunks = list(client.chat.completions.create(model="local/tiny", stream=True, **REQUEST))
    relayed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert relayed == direct and relayed
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # llama.cpp sends no usage in streams: routeway counted, and says so
    [(estimated, cost)] = local_gateway.rows("SELECT usage_estimated, total_cost_nano FROM generations WHERE id = ?",
                                             (chunks[0].id,))
    assert estimated == 1 and cost > 0


WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.mark.parametrize("stream", [False, True])
def test_real_engine_hermes_text_becomes_reasoning_and_a_tool_call(local_gateway: Gateway, stream: bool) -> None:
    account = local_gateway.account(credits=1)
    client = account.openai_client()
    request = {"model": "local/tiny-hermes", "messages": [{"role": "user", "content": "Weather in Paris?"}],
               "max_tokens": 120, "tools": WEATHER}
    if not stream:
        choice = client.chat.completions.create(**request).choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.model_extra["reasoning"] == "Look it up."
        [call] = choice.message.tool_calls
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
        return
    reasoning, arguments, names, finish = "", "", "", None
    for chunk in client.chat.completions.create(**request, stream=True):
        for c in chunk.choices:
            reasoning += (c.delta.model_extra or {}).get("reasoning") or ""
            for d in c.delta.tool_calls or []:
                names += (d.function.name or "") if d.function else ""
                arguments += (d.function.arguments or "") if d.function else ""
            finish = c.finish_reason or finish
    assert (reasoning, names, json.loads(arguments), finish) == ("Look it up.", "get_weather", {"city": "Paris"}, "tool_calls")


def test_real_engine_json_schema_is_constrained_and_validated(local_gateway: Gateway) -> None:
    account = local_gateway.account(credits=1)
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^[a-z]{1,8}$"},
                                               "ok": {"type": "boolean"}, "tag": {"enum": ["a", "b"]}},
              "required": ["name", "ok", "tag"], "additionalProperties": False}
    reply = account.chat({"model": "local/tiny", "messages": [{"role": "user", "content": "JSON please"}],
                          "max_tokens": 80, "temperature": 0,
                          "response_format": {"type": "json_schema",
                                              "json_schema": {"name": "thing", "schema": schema, "strict": True}}})
    assert reply.status_code == 200, reply.text
    value = json.loads(reply.json()["choices"][0]["message"]["content"])
    assert set(value) == {"name", "ok", "tag"} and value["tag"] in ("a", "b")
