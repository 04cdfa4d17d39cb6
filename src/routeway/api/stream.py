"""The streaming half of a chat exchange: open the upstream stream, wait for its first token (falling
back to the next endpoint until then), relay every event in the one normalized shape, and close with the
usage chunk and ``[DONE]`` once the settlement is durable."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from routeway.api import sse
from routeway.api.disconnect import unless_client_leaves
from routeway.api.http import Request
from routeway.errors import STORE_UNAVAILABLE, APIError
from routeway.ledger.money import nano_to_usd
from routeway.ledger.metering import GenerationRecord
from routeway.providers import UpstreamCall, UpstreamError
from routeway.routing.plan import Attempt
from routeway.transform import structured
from routeway.transform.normalize import finish_reason, normalize_message
from routeway.transform.raw_hermes import RAW_DIALECTS, DeltaSplitter, finish_reason_for, tool_names
from routeway.transform.reasoning import finish_reasoning
from routeway.transform.request import upstream_body
from routeway.transform.usage import MalformedUsage, UsageCounts
from routeway.wire.chat import ChatRequest

if TYPE_CHECKING:
    from routeway.services import Services

log = logging.getLogger("routeway.chat")


class FirstToken:
    """A stream whose first token has arrived: the rest of its events follow."""

    __slots__ = ("call", "events", "first")

    def __init__(self, call: UpstreamCall, events: AsyncIterator[dict[str, Any]], first: dict[str, Any] | None) -> None:
        self.call, self.events, self.first = call, events, first



class StreamRelay:
    """Mixed into ``Exchange`` (api/chat.py), whose state and helpers these methods use."""

    services: Services
    request: Request
    chat: ChatRequest
    id: str
    attempt: Attempt | None
    record: GenerationRecord | None
    usage: UsageCounts | None
    usage_rejected: str | None
    produced: list[str]
    content_parts: list[str]
    native_finish: str | None
    finish: str | None
    committed: bool
    recorded: bool
    first_token: float | None
    exclude_reasoning: bool
    splitter: DeltaSplitter | None
    split_done: bool
    made_calls: bool

    _first_answer: Callable[[Callable[[Attempt, dict[str, Any]], Awaitable[Any]]], Awaitable[Any]]
    _header_pairs: Callable[[], list[tuple[bytes, bytes]]]
    _usage_wire: Callable[[], dict[str, Any]]
    _add_metadata: Callable[[dict[str, Any]], None]
    _call_prefix: Callable[[], str]
    _tools: Callable[[], list[dict[str, Any]] | None]

    async def _stream(self) -> None:
        try:
            finished, _ = await unless_client_leaves(self._relay(), self.request)
            if not finished:
                if self.record is not None:
                    self.record.cancelled = True
                return
        except APIError:
            raise
        except Exception:
            log.exception("relaying generation %s failed", self.id)
            if self.record is not None:
                self.record.status, self.record.error = 500, "internal error while relaying the stream"

    async def _open_stream(self, attempt: Attempt, entry: dict[str, Any]) -> FirstToken:
        """Open the upstream stream and wait for its first token; until then a failure falls back."""
        body, entry["dropped_parameters"] = upstream_body(self.chat, attempt.endpoint, True)
        call = await self.services.adapters[attempt.endpoint.provider.name].open(attempt.endpoint, body, True)
        entry["status"] = call.upstream_status
        try:
            if not self.committed:
                self.committed = True
                await self.request.send({"type": "http.response.start", "status": 200,
                                         "headers": sse.HEADERS + self._header_pairs()})
                await self._send(sse.PROCESSING)
            events = call.events().__aiter__()
            limit = attempt.endpoint.provider.timeouts.first_byte
            try:
                async with asyncio.timeout(limit):
                    while True:
                        event = await self._next_with_keepalive(events)
                        if event is None or event.get("choices") or event.get("usage"):
                            return FirstToken(call, events, event)
            except TimeoutError:
                raise UpstreamError(408, f"upstream sent no token within {limit:g} s") from None
        except BaseException:
            call.close()
            raise

    async def _next_with_keepalive(self, events: AsyncIterator[dict[str, Any]]) -> dict[str, Any] | None:
        """The next upstream event, awaited in this task; a timer sends a PROCESSING comment every
        keepalive interval meanwhile (no second task per stream unless the wait is that long)."""
        loop = asyncio.get_running_loop()
        interval = self.services.settings.keepalive_seconds
        comments: list[asyncio.Task[None]] = []

        def comment() -> None:
            nonlocal timer
            comments.append(loop.create_task(self._send(sse.PROCESSING)))
            timer = loop.call_later(interval, comment)

        timer = loop.call_later(interval, comment)
        try:
            return await anext(events)
        except StopAsyncIteration:
            return None
        finally:
            timer.cancel()
            for sending in comments:
                if not sending.done():
                    await sending  # every comment goes out before the event that follows it

    async def _relay(self) -> None:
        opened: FirstToken = await self._first_answer(self._open_stream)
        assert self.attempt is not None and self.record is not None
        model_id, provider = self.attempt.model.id, self.attempt.endpoint.provider.label
        created = int(time.time())
        if self.attempt.endpoint.dialect in RAW_DIALECTS:
            self.splitter = DeltaSplitter(self._call_prefix(), tool_names(self._tools()))
        try:
            if opened.first is not None:
                await self._relay_event(opened.first, model_id, provider, created)
                async for upstream_event in opened.events:
                    await self._relay_event(upstream_event, model_id, provider, created)
            if self.splitter is not None and not self.split_done:  # the stream ended without a finish reason
                await self._relay_event({"choices": [{"index": 0, "delta": {}, "finish_reason": None}]},
                                        model_id, provider, created, final=True)
            fmt = self.chat.response_format
            if structured.wants_json(fmt) and structured.is_strict(fmt):
                verdict = structured.check_answer("".join(self.content_parts), fmt, heal=False)  # type: ignore[arg-type]
                if not verdict.ok:
                    raise UpstreamError(502, f"The streamed answer is not valid JSON for the requested schema"
                                             f" (strict): {verdict.problem}")
        except UpstreamError as error:
            self.record.status, self.record.error = error.status, error.message
            self.native_finish = self.native_finish or "error"
            await self._send(sse.event({
                "id": self.id, "object": "chat.completion.chunk", "created": created, "model": model_id,
                "provider": provider,
                "error": {"code": error.status, "message": error.message,
                          "metadata": {"error_type": "provider_unavailable", "provider_name": provider}},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error",
                             "native_finish_reason": None}],
            }))
        finally:
            opened.call.close()

    async def _relay_event(self, upstream: dict[str, Any], model_id: str, provider: str, created: int,
                           final: bool = False) -> None:
        usage = upstream.pop("usage", None)
        if usage is not None:
            self._take_usage(usage)
        choices = upstream.get("choices")
        if not choices:
            return
        if self.first_token is None:
            self.first_token = time.monotonic()
            assert self.record is not None
            self.record.upstream_id = upstream.get("id")
        for choice in choices:
            delta = choice.get("delta") or {}
            normalize_message(delta)
            native = choice.get("finish_reason")
            if self.splitter is not None and choice.get("index", 0) == 0:
                # the splitter's held-back text must come out before the finish reason
                self.split_done = final or native is not None
                self.splitter.split(delta, self.split_done)
                if delta.get("tool_calls"):
                    self.made_calls = True
                choice["delta"] = delta
            for text in (delta.get("content"), delta.get("reasoning")):
                if text:
                    self.produced.append(text)
            if delta.get("content"):
                self.content_parts.append(delta["content"])
            finish_reasoning(delta, self.exclude_reasoning)
            if native is not None:
                self.native_finish = native
            choice["native_finish_reason"] = native
            choice["finish_reason"] = finish_reason(native)
            if self.splitter is not None and self.split_done and choice.get("index", 0) == 0:
                choice["finish_reason"] = finish_reason_for(choice["finish_reason"] or "stop", self.made_calls,
                                                            self.splitter.errors, self.splitter.unclosed_think)
                if self.splitter.errors:
                    choice["error"] = {"code": 502, "message": "; ".join(self.splitter.errors),
                                       "metadata": {"error_type": "invalid_tool_call"}}
            if choice["finish_reason"] is not None and choice.get("index", 0) == 0:
                self.finish = choice["finish_reason"]
        upstream["id"], upstream["model"], upstream["provider"] = self.id, model_id, provider
        upstream["object"], upstream["created"] = "chat.completion.chunk", created
        await self._send(sse.event(upstream))

    def _take_usage(self, usage: Any) -> None:
        """The stream's content may already be with the client, so malformed usage cannot fail it:
        the usage is discarded and routeway's estimate is billed (``usage_rejected`` says why)."""
        try:
            counts = UsageCounts.from_upstream(usage)
        except MalformedUsage as bad:
            log.warning("generation %s: discarding the upstream's malformed usage: %s", self.id, bad)
            self.usage, self.usage_rejected = None, bad.reason
            return
        if counts is not None:
            self.usage, self.usage_rejected = counts, None

    async def _send(self, body: bytes) -> None:
        await self.request.send({"type": "http.response.body", "body": body, "more_body": True})

    async def _finish_stream(self, failure: APIError | None) -> None:
        """After settlement is durable: an error chunk if every attempt failed (or if the store could not
        write the settlement, which is then held and written later), the usage chunk, [DONE]."""
        record = self.record
        model = self.attempt.model.id if self.attempt else (self.chat.model or "")
        provider = self.attempt.endpoint.provider.label if self.attempt else None
        tail = b""
        if failure is not None:
            tail += sse.event({
                "id": self.id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "provider": provider, "error": failure.body()["error"],
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error", "native_finish_reason": None}],
            })
        if not self.recorded and record is not None:
            tail += sse.event({
                "id": self.id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "provider": provider, "choices": [], "error": {
                    "code": 503, "metadata": {"error_type": STORE_UNAVAILABLE, "store": self.services.store.problem},
                    "message": f"The answer above was delivered, but routeway could not record it yet"
                               f" ({self.services.store.problem or 'the store cannot write'}). Its charge of"
                               f" ${nano_to_usd(record.total_cost_nano):.6f} is held on your account and is recorded"
                               f" as soon as the store can write again; do not retry this request."}})
        final: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": int(time.time()),
                                 "model": model, "provider": provider, "choices": [],
                                 "usage": self._usage_wire() if record else UsageCounts().to_wire(0.0)}
        self._add_metadata(final)
        await self.request.send({"type": "http.response.body", "body": tail + sse.event(final) + sse.DONE,
                                 "more_body": False})
