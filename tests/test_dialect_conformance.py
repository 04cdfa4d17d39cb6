"""The conformance harness every registered dialect passes (routeway/dialects/), run over each name in the
registry, so a new dialect is tested by registering it:

- the registry fails loudly with the valid names, and the config refuses a dialect its provider kind
  cannot carry, naming the ones it can;
- request rendering: the client's request and the endpoint are left as they were, the same request gives
  the same body whatever was rendered before, every parameter is sent or reported dropped, the body is
  JSON within the reservation's output bound, and past tool calls written the dialect's way read back
  as the same calls;
- answers: any chunking of a stream gives what the whole answer gives (through the real exchange
  core), finish reasons come out normalized, engines' reasoning fields come out as ``reasoning``;
- routing, the exchange, the ledger and the API never mention a dialect.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import routeway
from routeway.catalog import Catalog, Endpoint, ModelInfo
from routeway.config import ConfigError, ProviderConfig, RoutingSettings, load_settings
from routeway.dialects import registry
from routeway.dialects.base import Dialect
from routeway.exchange import stream, whole
from routeway.exchange.core import Exchange
from routeway.exchange.events import Answer, Delta
from routeway.ledger.bound import output_tokens
from routeway.routing.health import Health
from routeway.routing.plan import Attempt
from routeway.transform.request import upstream_body
from routeway.wire.chat import ChatRequest, parse_chat_request

from tests.conftest import Account, Gateway, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream
from tests.test_exchange_unit import FakeAdapter, FakeCall, FakeClient, FakeMetering

NAMES = registry.NAMES
each_dialect = pytest.mark.parametrize("name", NAMES)
PARAMETERS = ("max_tokens", "temperature", "top_p", "top_k", "stop", "seed", "frequency_penalty", "presence_penalty",
              "repetition_penalty", "min_p", "top_a", "logit_bias", "logprobs", "top_logprobs", "response_format",
              "structured_outputs", "tools", "tool_choice", "reasoning", "include_reasoning")
MODEL = ModelInfo("test/model", "Test", 0, "", 8192, None, Decimal(1), Decimal(2), "Other", None, ("text",), ("text",),
                  PARAMETERS, None, {})
NORMALIZED_FINISH = {"stop", "length", "tool_calls", "content_filter", "error", None}


def endpoint(name: str, extra_body: dict[str, Any] | None = None, max_output: int | None = None) -> Endpoint:
    kind = "anthropic" if name == "anthropic" else "openai"
    return Endpoint(MODEL, ProviderConfig("fake", kind, "http://127.0.0.1:9", "Fake"), "m", 1_000_000_000,
                    2_000_000_000, 8192, max_output, "unknown", PARAMETERS, name,
                    extra_body if extra_body is not None else {"chat_template_kwargs": {"keep": True}, "top": 1})


def chat(body: dict[str, Any]) -> ChatRequest:
    return parse_chat_request(json.dumps({"model": "test/model", **body}).encode())


# ---- requests ---------------------------------------------------------------------------------------
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function",
           "function": {"name": "get_weather", "description": "Weather in a city", "parameters": CITY}}
PAST_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
HISTORY = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"},
           {"role": "assistant", "content": None, "tool_calls": [PAST_CALL]},
           {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18C, sunny"}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
HI = [{"role": "user", "content": "Hi"}]
REQUESTS: dict[str, dict[str, Any]] = {
    "plain": {"messages": HI},
    "sampling": {"messages": HI, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": 7, "stop": ["\n\n"],
                 "frequency_penalty": 0.1, "presence_penalty": 0.2, "repetition_penalty": 1.1, "min_p": 0.05,
                 "top_a": 0.1, "logit_bias": {"42": -5}, "logprobs": True, "top_logprobs": 3},
    "tools": {"messages": HISTORY, "tools": [WEATHER], "tool_choice": "auto", "parallel_tool_calls": False},
    "thinking-effort": {"messages": HI, "reasoning": {"effort": "high"}, "max_tokens": 4000},
    "thinking-budget": {"messages": HI, "reasoning": {"max_tokens": 1500}, "max_tokens": 3000},
    "thinking-off": {"messages": HI, "reasoning": {"enabled": False}},
    "json-schema": {"messages": [{"role": "system", "content": "Answer in JSON."}, *HI],
                    "response_format": {"type": "json_schema",
                                        "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}},
    "json-object": {"messages": HI, "response_format": {"type": "json_object"}},
    "text-format": {"messages": HI, "response_format": {"type": "text"}},
}
SAMPLED = ("temperature", "top_p", "top_k", "frequency_penalty", "presence_penalty", "repetition_penalty", "min_p",
           "top_a", "seed", "stop", "logit_bias", "logprobs", "top_logprobs", "tools", "tool_choice",
           "parallel_tool_calls")
TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")


def render(name: str, request: str, e: Endpoint | None = None) -> tuple[dict[str, Any], list[str]]:
    return upstream_body(chat(REQUESTS[request]), e or endpoint(name), stream=False)


# ---- the registry and the config --------------------------------------------------------------------
@each_dialect
def test_every_name_loads_one_shared_dialect_of_that_name(name: str) -> None:
    dialect = registry.get(name)
    assert isinstance(dialect, Dialect) and dialect.name == name and registry.get(name) is dialect
    assert any(name in valid for valid in registry.KIND_DIALECTS.values())  # some provider kind can carry it


def test_an_unknown_name_fails_loudly_listing_the_valid_ones() -> None:
    with pytest.raises(registry.UnknownDialect) as raised:
        registry.get("hermes3")
    assert "'hermes3'" in str(raised.value) and all(name in str(raised.value) for name in NAMES)
    assert registry.get(None) is registry.get("openai")


def config(tmp_path: Path, kind: str, dialect: str | None) -> Path:
    path = tmp_path / "c.toml"
    if kind == "local":  # routeway runs the engine itself: a model file instead of a URL
        model = tmp_path / "model.gguf"
        model.write_bytes(b"GGUF")  # never loaded: only the configuration is read
        where = f"model_path = '{model}'"
    else:
        where = "base_url = 'http://127.0.0.1:9'"
    path.write_text(f"[[providers]]\nname = 'p'\nkind = '{kind}'\n{where}\n\n"
                    "[[endpoints]]\nmodel = 'nousresearch/hermes-4-70b'\nprovider = 'p'\nupstream_model = 'm'\n"
                    + (f"dialect = '{dialect}'\n" if dialect else ""))
    return path


def test_the_config_refuses_an_unknown_dialect_naming_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(config(tmp_path, "openai", "hermes3"), env={})
    assert str(raised.value) == ("endpoints[0]: unknown dialect 'hermes3'; valid dialects: openai, openrouter, hermes,"
                                 " hermes-prompt, qwen3, deepseek, llamacpp, ollama, anthropic")


@pytest.mark.parametrize(("kind", "dialect", "valid"), [
    ("anthropic", "hermes", "anthropic"),
    ("openai", "anthropic", "openai, openrouter, hermes, hermes-prompt, qwen3, deepseek, llamacpp, ollama"),
    ("local", "anthropic", "openai, openrouter, hermes, hermes-prompt, qwen3, deepseek, llamacpp, ollama"),
])
def test_the_config_refuses_a_dialect_the_provider_kind_cannot_carry(tmp_path: Path, kind: str, dialect: str,
                                                                      valid: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(config(tmp_path, kind, dialect), env={})
    assert str(raised.value) == (f"endpoints[0]: dialect '{dialect}' cannot be spoken over a provider of kind"
                                 f" '{kind}'; valid dialects for kind '{kind}': {valid}")


@pytest.mark.parametrize("kind", sorted(registry.KIND_DIALECTS))
def test_each_kind_loads_with_each_dialect_it_carries_and_defaults_to_one_of_them(tmp_path: Path, kind: str) -> None:
    assert registry.KIND_DIALECTS["local"] == registry.KIND_DIALECTS["openai"]  # an engine routeway runs: OpenAI's wire
    for dialect in (None, *registry.KIND_DIALECTS[kind]):
        settings = load_settings(config(tmp_path, kind, dialect), env={})
        [declared] = Catalog.build(settings).endpoints_for("nousresearch/hermes-4-70b")
        assert declared.dialect == (dialect or registry.default_for(kind, "p"))
        assert declared.dialect in registry.KIND_DIALECTS[kind]
    assert registry.default_for("openai", "openrouter") == "openrouter"  # OpenRouter takes its own reasoning object


# ---- request rendering -----------------------------------------------------------------------------
@each_dialect
@pytest.mark.parametrize("request_name", REQUESTS)
def test_rendering_leaves_the_request_and_the_endpoint_as_they_were(name: str, request_name: str) -> None:
    request, e = chat(REQUESTS[request_name]), endpoint(name)
    before = (copy.deepcopy(msgspec.to_builtins(request)), copy.deepcopy(dict(e.extra_body)))
    upstream_body(request, e, stream=True)
    assert (msgspec.to_builtins(request), dict(e.extra_body)) == before


@each_dialect
@pytest.mark.parametrize("request_name", REQUESTS)
def test_the_same_request_gives_the_same_body_whatever_came_before(name: str, request_name: str) -> None:
    """An endpoint is shared by every request to it: one request's switches must not reach the next one."""
    alone = render(name, request_name)
    shared = endpoint(name)
    for other in REQUESTS:
        render(name, other, shared)
    assert render(name, request_name, shared) == alone
    assert alone[0]["chat_template_kwargs"]["keep"] is True and alone[0]["top"] == 1  # extra_body is merged in


@each_dialect
@pytest.mark.parametrize("request_name", REQUESTS)
def test_every_parameter_is_sent_or_reported_dropped(name: str, request_name: str) -> None:
    dialect, sent = registry.get(name), REQUESTS[request_name]
    body, dropped = render(name, request_name)
    assert set(dropped) <= set(sent)  # only what the client asked for is ever reported
    for field in SAMPLED:
        if field not in sent or field in dropped:
            continue
        if dialect.renders_tools and field in TOOL_FIELDS:  # written into the prompt instead
            assert field not in body and "get_weather" in body["messages"][0]["content"]
        else:
            assert body[field] == sent[field], field
    for field in ("reasoning", "response_format"):  # sent: the body differs from the request's without it
        if field in sent and field not in dropped and sent[field].get("enabled") is not False:
            without = {k: v for k, v in sent.items() if k != field}
            bare = upstream_body(chat(without), endpoint(name), stream=False)[0]
            assert body != {**bare, "max_tokens": body["max_tokens"]}, field


@each_dialect
@pytest.mark.parametrize("request_name", REQUESTS)
@pytest.mark.parametrize("max_output", [None, 600])
def test_the_body_is_json_for_the_endpoint_within_the_reserved_output(name: str, request_name: str,
                                                                      max_output: int | None) -> None:
    request, e = chat(REQUESTS[request_name]), endpoint(name, max_output=max_output)
    body, _ = upstream_body(request, e, stream=True)
    assert msgspec.json.decode(msgspec.json.encode(body)) == body
    assert body["model"] == "m" and body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert 1 <= body["max_tokens"] <= output_tokens(request.output_limit, e)  # the reservation's bound
    assert body["messages"][-1] == request.messages[-1] or registry.get(name).renders_tools  # the turn is there


@each_dialect
def test_past_tool_calls_written_the_dialects_way_read_back_as_the_same_calls(name: str) -> None:
    body, _ = render(name, "tools")
    [assistant] = [m for m in body["messages"] if m.get("role") == "assistant"]
    answer = run(name, {"messages": HI, "tools": [WEATHER]}, FakeCall([], {
        "id": "up", "choices": [{"index": 0, "message": copy.deepcopy(assistant), "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}}))
    assert isinstance(answer, Answer)
    [choice] = answer.choices
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in choice.message["tool_calls"]] \
        == [("get_weather", {"city": "Paris"})]
    assert choice.finish in ("tool_calls", "stop") and choice.error is None
    assert not (choice.message.get("content") or "").strip()


# ---- answers ---------------------------------------------------------------------------------------
def run(name: str, request: dict[str, Any], call: FakeCall) -> Answer | list[Delta]:
    """One exchange through the real core against a scripted upstream: the whole answer, or the deltas
    the client's renderer was given."""
    e, client = endpoint(name), FakeClient()
    services = SimpleNamespace(
        metering=FakeMetering(), health=Health(), adapters={"fake": FakeAdapter(call)}, usage_rejections=Counter(), tracing=None, watchers=[],
        settings=SimpleNamespace(routing=RoutingSettings(), keepalive_seconds=10.0),
        store=SimpleNamespace(problem=None))
    request_ = chat(request)
    exchange = Exchange(services, request_, SimpleNamespace(account_id="acct", hash="h"),  # type: ignore[arg-type]
                        [Attempt(e.model, e)], 100, {}, client)
    outcome = asyncio.run(exchange.run(stream.relay if request_.stream else whole.complete))
    assert outcome.failure is None, outcome.failure
    return outcome.answer if outcome.answer is not None else [d for step in client.steps for d in step]


USAGE = {"id": "up", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}
CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris \\"Ville\\""}}\n</tool_call>'


@dataclass(frozen=True)
class Fixture:
    """One upstream answer, sent whole or as a stream cut anywhere."""

    content: str | None = None
    reasoning: tuple[str, str] | None = None  # (the engine's field, its text)
    calls: tuple[tuple[str, str, str], ...] = ()  # native tool calls: (id, name, arguments)
    finish: str | None = "stop"
    think: str | None = None  # the reasoning a raw-text splitter finds in ``content``

    def whole(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning:
            message[self.reasoning[0]] = self.reasoning[1]
        if self.calls:
            message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                                     for i, n, a in self.calls]
        return {"id": "up", "choices": [{"index": 0, "message": message, "finish_reason": self.finish}],
                "usage": USAGE["usage"]}

    def stream(self, cuts: list[int]) -> list[dict[str, Any]]:
        events = [chunk({"role": "assistant"})]
        if self.reasoning:
            events += [chunk({self.reasoning[0]: piece}) for piece in pieces(self.reasoning[1], cuts)]
        events += [chunk({"content": piece}) for piece in pieces(self.content or "", cuts)]
        for index, (call_id, function, arguments) in enumerate(self.calls):
            events.append(chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                                 "function": {"name": function, "arguments": ""}}]}))
            events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                       for piece in pieces(arguments, cuts)]
        return [*events, {"id": "up", "choices": [{"index": 0, "delta": {}, "finish_reason": self.finish}]}, USAGE]


def chunk(delta: dict[str, Any]) -> dict[str, Any]:
    return {"id": "up", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def pieces(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


FIXTURES = {
    "text": Fixture("Hello there, world. a < b, and <thinking> is no tag."),
    "reasoning_content": Fixture("The answer.", reasoning=("reasoning_content", "Let me think: 2 + 2.")),
    "reasoning": Fixture("The answer.", reasoning=("reasoning", "vLLM's field."), finish="length"),
    "thinking": Fixture("The answer.", reasoning=("thinking", "Ollama's field."), finish="end_turn"),
    "native-tool-call": Fixture(None, calls=(("call_a", "get_weather", '{"city": "Paris"}'),), finish="tool_calls"),
    "raw-think-and-call": Fixture(f"<think>Need weather.</think>Checking.\n{CALL_TEXT}", think="Need weather."),
    "raw-unclosed-think": Fixture("<think>Still going and go", finish="length", think="Still going and go"),
    "engine-finish": Fixture("Done.", finish="eos"),
    "no-finish": Fixture("Cut off.", finish=None),
}
REASONING_ALIASES = ("reasoning_content", "thinking")


def folded(deltas: list[Delta]) -> dict[str, Any]:
    """A stream's deltas as one message, checking on the way what every delta must hold."""
    calls: dict[int, list[str]] = {}
    for delta in deltas:
        assert not set(REASONING_ALIASES) & set(delta.fields), delta.fields  # reasoning is in `reasoning`
        assert delta.finish in NORMALIZED_FINISH
        for fragment in delta.tool_calls or ():
            entry = calls.setdefault(fragment["index"], ["", "", ""])
            function = fragment.get("function") or {}
            entry[0] += fragment.get("id") or ""
            entry[1] += function.get("name") or ""
            entry[2] += function.get("arguments") or ""
    finishes = [d.finish for d in deltas if d.finish is not None]
    return {"content": "".join(d.text or "" for d in deltas) or None,
            "reasoning": "".join(d.reasoning or "" for d in deltas) or None,
            "calls": [calls[i] for i in sorted(calls)], "finish": finishes[-1] if finishes else None,
            "errors": [d.error["message"] for d in deltas if d.error]}


def answered(answer: Answer) -> dict[str, Any]:
    [choice] = answer.choices
    message = choice.message
    assert not set(REASONING_ALIASES) & set(message) and choice.finish in NORMALIZED_FINISH
    calls = [[c["id"], c["function"]["name"], c["function"]["arguments"]] for c in message.get("tool_calls") or ()]
    return {"content": message.get("content") or None, "reasoning": message.get("reasoning"), "calls": calls,
            "finish": choice.finish, "errors": [choice.error["message"]] if choice.error else []}


def without_ids(result: dict[str, Any]) -> dict[str, Any]:
    """Call ids are made per generation (raw text) or the upstream's: each call has one, unique."""
    ids = [call[0] for call in result["calls"]]
    assert all(ids) and len(set(ids)) == len(ids)
    return {**result, "calls": [call[1:] for call in result["calls"]]}


_whole_answers: dict[tuple[str, str], dict[str, Any]] = {}


def whole_answer(name: str, fixture: str) -> dict[str, Any]:
    key = (name, fixture)
    if key not in _whole_answers:
        answer = run(name, {"messages": HI, "tools": [WEATHER]}, FakeCall([], FIXTURES[fixture].whole()))
        assert isinstance(answer, Answer)
        _whole_answers[key] = without_ids(answered(answer))
    return _whole_answers[key]


@each_dialect
@pytest.mark.parametrize("fixture", FIXTURES)
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_chunking_of_a_stream_gives_the_whole_answer(name: str, fixture: str, cuts: list[int]) -> None:
    deltas = run(name, {"messages": HI, "tools": [WEATHER], "stream": True}, FakeCall(FIXTURES[fixture].stream(cuts)))
    assert isinstance(deltas, list)
    assert without_ids(folded(deltas)) == whole_answer(name, fixture)


@each_dialect
@pytest.mark.parametrize("fixture", FIXTURES)
def test_reasoning_comes_out_as_reasoning_and_finish_reasons_normalized(name: str, fixture: str) -> None:
    given_, result = FIXTURES[fixture], whole_answer(name, fixture)
    splits_text = registry.get(name).splitter("call_", None) is not None
    expected = given_.reasoning[1] if given_.reasoning else (given_.think if splits_text else None)
    assert result["reasoning"] == expected
    if splits_text and given_.think:
        assert "<think>" not in (result["content"] or "") and "</think>" not in (result["content"] or "")
    assert result["finish"] == {"text": "stop", "reasoning_content": "stop", "reasoning": "length",
                                "thinking": "stop", "native-tool-call": "tool_calls",
                                "raw-think-and-call": "tool_calls" if splits_text else "stop",
                                "raw-unclosed-think": "length", "engine-finish": "stop", "no-finish": None}[fixture]


@each_dialect
@pytest.mark.parametrize("native", ["stop", "length", "tool_calls", "content_filter", "error", "eos", "end_turn",
                                    "max_tokens", "stop_sequence", "tool_use", "refusal", "model_length",
                                    "pause_turn", "", None])
def test_finish_reasons_are_openrouters_five(name: str, native: str | None) -> None:
    normalized = registry.get(name).finish_reason(native)
    assert normalized in NORMALIZED_FINISH and (normalized is None) == (not native)
    if native in ("stop", "length", "tool_calls", "content_filter", "error"):
        assert normalized == native


# ---- the layers that never see a dialect ------------------------------------------------------------
BLIND = ("routing", "exchange", "ledger", "api")


def mentions(path: Path) -> Iterator[str]:
    """Where a module names a dialect, reads an endpoint's dialect or reaches for dialect machinery."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and node.value in NAMES and id(node) not in docstrings:
            yield f"{line}: the string {node.value!r}"
        elif isinstance(node, ast.Attribute) and "dialect" in node.attr.lower():
            yield f"{line}: .{node.attr}"
        elif isinstance(node, ast.Name) and "dialect" in node.id.lower():
            yield f"{line}: {node.id}"
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module.startswith("routeway.dialects") or "hermes" in node.module):
            yield f"{line}: from {node.module} import …"
        elif isinstance(node, ast.Import):
            yield from (f"{line}: import {a.name}" for a in node.names if a.name.startswith("routeway.dialects"))


def test_routing_exchange_ledger_and_api_never_mention_a_dialect() -> None:
    package = Path(routeway.__file__).parent
    found = [f"{path.relative_to(package)}:{where}" for layer in BLIND
             for path in sorted((package / layer).rglob("*.py")) for where in mentions(path)]
    assert not found, found


def test_the_layering_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""about hermes"""\nfrom routeway.transform.raw_hermes import X\nif e.dialect == "qwen3":\n'
                      '    RAW_DIALECTS = ()\nname = "nousresearch/hermes-4-70b"\n')
    assert sorted(m.split(":")[0] for m in mentions(sample)) == ["2", "3", "3", "4"]


# ---- through a real gateway -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def kwargs_gateway(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """An endpoint whose extra_body has its own chat_template_kwargs, as a vLLM operator writes them."""
    root = tmp_path_factory.mktemp("kwargs")
    extra = ("\n[[models]]\nid = \"test/qwen-kwargs\"\ncontext_length = 8192\nprompt_price = \"1.00\"\n"
             "completion_price = \"2.00\"\nsupported_parameters = [\"max_tokens\", \"reasoning\"]\n\n"
             "[[endpoints]]\nmodel = \"test/qwen-kwargs\"\nprovider = \"mock\"\nupstream_model = \"echo#kwargs\"\n"
             "dialect = \"qwen3\"\nextra_body = { chat_template_kwargs = { custom = 1 } }\n")
    gateway = start_gateway(write_config(root / "routeway.toml", upstream.base_url, extra), root / "data")
    yield gateway
    stop_gateway(gateway)


def test_one_requests_thinking_switch_does_not_reach_the_next_request(kwargs_gateway: Gateway,
                                                                      upstream: MockUpstream) -> None:
    account: Account = kwargs_gateway.account()
    hi = {"model": "test/qwen-kwargs", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    for body in ({**hi, "reasoning": {"enabled": True}}, hi, {**hi, "reasoning": {"enabled": False}}, hi):
        assert account.chat(body).status_code == 200
    sent = [r.get("chat_template_kwargs") for r in upstream.requests if r["model"] == "echo#kwargs"][-4:]
    assert sent == [{"custom": 1, "enable_thinking": True}, {"custom": 1}, {"custom": 1, "enable_thinking": False},
                    {"custom": 1}]
