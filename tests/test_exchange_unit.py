"""The exchange core on its own, without a server: a fake adapter answers, a fake client records the
normalized events the core produces, fake metering records the settlement."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest

from routeway.catalog import Endpoint, ModelInfo
from routeway.config import ProviderConfig, RoutingSettings
from routeway.errors import APIError
from routeway.exchange import stream, whole
from routeway.exchange.core import Exchange
from routeway.exchange.events import Delta, Outcome
from routeway.ledger.metering import GenerationRecord
from routeway.routing.health import Health
from routeway.routing.plan import Attempt
from routeway.wire.chat import parse_chat_request

T = TypeVar("T")
PROVIDER = ProviderConfig(name="fake", kind="openai", base_url="http://127.0.0.1:9", display_name="Fake")


def endpoint(dialect: str | None = None, max_output: int | None = 100) -> Endpoint:
    model = ModelInfo(id="test/model", name="Test", created=0, description="", context_length=1000,
                      max_output=max_output, prompt_price=Decimal(1), completion_price=Decimal(2), tokenizer="",
                      instruct_type=None, input_modalities=("text",), output_modalities=("text",),
                      supported_parameters=("max_tokens",), hugging_face_id=None, upstream_ids={})
    return Endpoint(model=model, provider=PROVIDER, upstream_model="m", prompt_nano_per_m=1_000_000_000,
                    completion_nano_per_m=2_000_000_000, context_length=1000, max_output=max_output,
                    quantization="unknown", supported_parameters=("max_tokens",), dialect=dialect)


def chunk(content: str | None = None, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    delta = {"content": content, **fields} if content is not None else dict(fields)
    return {"id": "up", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class FakeCall:
    upstream_status = 200

    def __init__(self, events: list[Any], answer: dict[str, Any] | None = None) -> None:
        self.script, self.answer, self.closed = events, answer, False

    async def json(self) -> dict[str, Any]:
        assert self.answer is not None
        return self.answer

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        for event in self.script:
            if isinstance(event, BaseException):
                raise event
            yield event

    def close(self) -> None:
        self.closed = True


class FakeAdapter:
    def __init__(self, call: FakeCall) -> None:
        self.call, self.bodies = call, []

    async def open(self, endpoint: Endpoint, body: dict[str, Any], stream: bool, client_headers: Any = None) -> FakeCall:
        self.bodies.append(body)
        return self.call


class FakeMetering:
    def __init__(self, writable: bool = True) -> None:
        self.writable, self.records, self.released = writable, [], 0

    def reserve(self, key: Any, amount: int, completion_nano_per_m: int, prompt_cost: int) -> Any:
        return SimpleNamespace(amount=amount)

    def release(self, reservation: Any) -> None:
        self.released += 1

    async def finish(self, reservation: Any, record: GenerationRecord) -> bool:
        record.total_cost_nano = min(record.cost(), reservation.amount)
        self.records.append(record)
        return self.writable


class FakeClient:
    """Records what the core asks of the client; never leaves."""

    def __init__(self) -> None:
        self.committed, self.steps, self.keepalives, self.begun = False, [], 0, None

    async def commit(self) -> None:
        self.committed = True

    async def keepalive(self) -> None:
        self.keepalives += 1

    def begin(self, model: str, provider: str) -> None:
        self.begun = (model, provider)

    async def deltas(self, deltas: list[Delta]) -> None:
        self.steps.append(deltas)

    async def unless_gone(self, work: Awaitable[T], keepalive: bool) -> tuple[bool, T | None]:
        return True, await work


def run(body: dict[str, Any], call: FakeCall, dialect: str | None = None, writable: bool = True,
        ) -> tuple[Outcome, FakeClient, FakeMetering, FakeAdapter]:
    chat = parse_chat_request(__import__("json").dumps(body).encode())
    adapter, metering, client = FakeAdapter(call), FakeMetering(writable), FakeClient()
    e = endpoint(dialect)
    services = SimpleNamespace(
        metering=metering, health=Health(), adapters={"fake": adapter}, usage_rejections=Counter(), tracing=None, watchers=[],
        settings=SimpleNamespace(routing=RoutingSettings(), keepalive_seconds=10.0),
        store=SimpleNamespace(problem="disk full" if not writable else None))
    exchange = Exchange(services, chat, SimpleNamespace(account_id="acct", hash="h"),  # type: ignore[arg-type]
                        [Attempt(e.model, e)], 100, {}, client)
    outcome = asyncio.run(exchange.run(stream.relay if chat.stream else whole.complete))
    return outcome, client, metering, adapter


HELLO = {"model": "test/model", "messages": [{"role": "user", "content": "hi"}]}
USAGE = {"id": "up", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def test_a_stream_becomes_text_deltas_a_finish_and_billed_usage() -> None:
    call = FakeCall([chunk("Hel", role="assistant"), chunk("lo"), chunk(finish="stop"), USAGE])
    outcome, client, metering, adapter = run({**HELLO, "stream": True}, call)
    assert client.committed and client.begun == ("test/model", "Fake")
    deltas = [d for step in client.steps for d in step]
    assert [d.text for d in deltas] == ["Hel", "lo", None]
    assert [d.finish for d in deltas] == [None, None, "stop"]
    assert outcome.failure is None and not outcome.held and outcome.usage is not None
    assert (outcome.usage.prompt, outcome.usage.completion) == (3, 2)
    [record] = metering.records
    assert record.status == 200 and record.finish_reason == "stop" and outcome.cost_nano == 3 * 1000 + 2 * 2000
    assert call.closed and adapter.bodies[0]["max_tokens"] == 100  # the endpoint's max output: the bound


def test_reasoning_fields_become_reasoning_deltas_with_details() -> None:
    call = FakeCall([chunk(reasoning_content="think"), chunk("answer", finish="stop")])
    _, client, _, _ = run({**HELLO, "stream": True}, call)
    first, second = (step[0] for step in client.steps)
    assert first.reasoning == "think" and first.reasoning_details[0]["text"] == "think" and first.text is None
    assert second.text == "answer" and second.reasoning is None


def test_raw_hermes_text_becomes_reasoning_and_tool_call_deltas() -> None:
    body = {**HELLO, "stream": True, "tools": [{"type": "function", "function": {"name": "get", "parameters": {}}}]}
    call = FakeCall([chunk("<think>hm</think>"), chunk('<tool_call>{"name": "get", "arguments": {"a": 1}}'),
                     chunk("</tool_call>", finish="stop")])
    _, client, _, _ = run(body, call, dialect="hermes")
    deltas = [d for step in client.steps for d in step]
    assert "".join(d.reasoning or "" for d in deltas) == "hm"
    calls = [c for d in deltas for c in d.tool_calls or ()]
    assert calls[0]["function"]["name"] == "get"
    assert "".join(c["function"]["arguments"] for c in calls).replace(" ", "") == '{"a":1}'
    assert deltas[-1].finish == "tool_calls" and deltas[-1].native_finish == "stop"


def test_a_failure_after_the_first_token_is_the_outcomes_failure() -> None:
    from routeway.providers import UpstreamError
    call = FakeCall([chunk("a"), UpstreamError(502, "cut")])
    outcome, _, metering, _ = run({**HELLO, "stream": True}, call)
    assert outcome.failure is not None and outcome.failure.metadata["error_type"] == "provider_unavailable"
    assert metering.records[0].status == 502 and metering.records[0].tokens_completion > 0


def test_an_internal_error_after_the_first_token_is_a_server_failure() -> None:
    call = FakeCall([chunk("a"), RuntimeError("bug")])
    outcome, _, metering, _ = run({**HELLO, "stream": True}, call)
    assert outcome.failure is not None and outcome.failure.status == 500
    assert outcome.failure.metadata["error_type"] == "server" and metering.records[0].status == 500


def test_a_strict_json_stream_that_fails_its_schema_is_an_invalid_response() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "strict": True,
                                                  "schema": {"type": "object", "required": ["a"]}}}
    outcome, _, _, _ = run({**HELLO, "stream": True, "response_format": fmt},
                           FakeCall([chunk("{}", finish="stop")]))
    assert outcome.failure is not None and outcome.failure.metadata["error_type"] == "invalid_response"


def test_a_whole_answer_is_one_normalized_choice() -> None:
    answer = {"id": "up", "choices": [{"index": 0, "finish_reason": "end_turn",
                                       "message": {"role": "assistant", "content": "hi", "thinking": "t"}}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    outcome, client, _, _ = run(HELLO, FakeCall([], answer))
    assert outcome.answer is not None and not client.steps
    [choice] = outcome.answer.choices
    assert choice.message["content"] == "hi" and choice.message["reasoning"] == "t"
    assert (choice.finish, choice.native_finish) == ("stop", "end_turn")


def test_a_held_settlement_is_in_the_outcome() -> None:
    outcome, _, _, _ = run({**HELLO, "stream": True}, FakeCall([chunk("a", finish="stop")]), writable=False)
    assert outcome.held and outcome.store_problem == "disk full"


def test_every_attempt_failing_before_the_status_line_is_raised() -> None:
    from routeway.providers import UpstreamError

    class Failing(FakeCall):
        async def json(self) -> dict[str, Any]:
            raise UpstreamError(502, "down")

    with pytest.raises(APIError) as raised:
        run(HELLO, Failing([]))
    assert raised.value.status == 502


def test_a_client_that_leaves_before_any_attempt_is_cancelled_and_holds_nothing() -> None:
    class Leaving(FakeClient):
        async def unless_gone(self, work: Awaitable[T], keepalive: bool) -> tuple[bool, T | None]:
            work.close()  # type: ignore[attr-defined]
            return False, None

    chat = parse_chat_request(b'{"model": "test/model", "messages": [{"role": "user", "content": "hi"}]}')
    metering, e = FakeMetering(), endpoint()
    services = SimpleNamespace(metering=metering, health=Health(), adapters={}, usage_rejections=Counter(), tracing=None, watchers=[],
                               settings=SimpleNamespace(routing=RoutingSettings(), keepalive_seconds=10.0),
                               store=SimpleNamespace(problem=None))
    exchange = Exchange(services, chat, SimpleNamespace(account_id="a", hash="h"),  # type: ignore[arg-type]
                        [Attempt(e.model, e)], 100, {}, Leaving())
    outcome = asyncio.run(exchange.run(whole.complete))
    assert outcome.cancelled and outcome.answer is None and metering.released == 1 and not metering.records
