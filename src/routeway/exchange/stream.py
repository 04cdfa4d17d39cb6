"""The streaming half of an exchange: open the upstream stream, wait for its first token (falling back
to the next endpoint until then), and turn every upstream event into normalized ``Delta`` events for the
client's renderer. Returns the failure that ended the stream after its first token, if any."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from routeway.errors import APIError
from routeway.exchange.core import Exchange
from routeway.exchange.events import Delta
from routeway.providers import UpstreamCall, UpstreamError
from routeway.routing.plan import Attempt
from routeway.transform import structured
from routeway.transform.normalize import normalize_message
from routeway.transform.reasoning import finish_reasoning
from routeway.transform.usage import MalformedUsage, UsageCounts

log = logging.getLogger("routeway.chat")
INVALID_RESPONSE = "invalid_response"


class FirstToken:
    """A stream whose first token has arrived: the rest of its events follow."""

    __slots__ = ("call", "events", "first")

    def __init__(self, call: UpstreamCall, events: AsyncIterator[dict[str, Any]], first: dict[str, Any] | None) -> None:
        self.call, self.events, self.first = call, events, first


async def relay(ex: Exchange) -> APIError | None:
    """The whole stream, stopped where it stands if the client leaves (the record is then cancelled).
    A failure after the first token is returned: the status line has gone out, so it ends the stream."""
    try:
        finished, failure = await ex.client.unless_gone(_relay(ex), keepalive=False)
    except APIError:
        raise
    except Exception:
        log.exception("relaying generation %s failed", ex.id)
        failure = APIError(500, "internal error while relaying the stream", error_type="server")
        if not ex.client.committed:
            raise failure from None
        finished = True
    if not finished:
        ex.client_left = True
        if ex.record is not None:
            ex.record.cancelled = True
        return None
    if failure is not None and ex.record is not None:
        ex.record.status, ex.record.error = failure.status, failure.message
        ex.native_finish = ex.native_finish or "error"
    return failure


async def _relay(ex: Exchange) -> APIError | None:
    opened: FirstToken = await ex.first_answer(lambda attempt, entry: _open_stream(ex, attempt, entry))
    assert ex.attempt is not None
    provider = ex.attempt.endpoint.provider.label
    ex.client.begin(ex.attempt.model.id, provider)
    try:
        if opened.first is not None:
            await _relay_event(ex, opened.first)
            async for upstream_event in opened.events:
                await _relay_event(ex, upstream_event)
        if ex.splitter is not None and not ex.splitter.done:  # the stream ended without a finish reason
            await _relay_event(ex, {"choices": [{"index": 0, "delta": {}, "finish_reason": None}]}, final=True)
        fmt = ex.chat.response_format
        if structured.wants_json(fmt) and structured.is_strict(fmt):
            verdict = structured.check_answer("".join(ex.content_parts), fmt, heal=False)  # type: ignore[arg-type]
            if not verdict.ok:
                return APIError(502, "The streamed answer is not valid JSON for the requested schema (strict):"
                                     f" {verdict.problem}", error_type=INVALID_RESPONSE,
                                metadata={"provider_name": provider})
    except UpstreamError as error:
        return APIError(error.status, error.message, error_type="provider_unavailable",
                        metadata={"provider_name": provider})
    finally:
        opened.call.close()
    return None


async def _open_stream(ex: Exchange, attempt: Attempt, entry: dict[str, Any]) -> FirstToken:
    """Open the upstream stream and wait for its first token; until then a failure falls back."""
    call = await ex.open_upstream(attempt, True, entry)
    entry["status"] = call.upstream_status
    try:
        if not ex.client.committed:
            await ex.client.commit()
        events = call.events().__aiter__()
        limit = attempt.endpoint.provider.timeouts.first_byte
        try:
            async with asyncio.timeout(limit):
                while True:
                    event = await _next_with_keepalive(ex, events)
                    if event is None or event.get("choices") or event.get("usage"):
                        return FirstToken(call, events, event)
        except TimeoutError:
            raise UpstreamError(408, f"upstream sent no token within {limit:g} s") from None
    except BaseException:
        call.close()
        raise


async def _next_with_keepalive(ex: Exchange, events: AsyncIterator[dict[str, Any]]) -> dict[str, Any] | None:
    """The next upstream event, awaited in this task; a timer asks the client for a keepalive every
    interval meanwhile (no second task per stream unless the wait is that long)."""
    loop = asyncio.get_running_loop()
    interval = ex.services.settings.keepalive_seconds
    comments: list[asyncio.Task[None]] = []
    timer: asyncio.TimerHandle  # set below, before comment() can run

    def comment() -> None:
        nonlocal timer
        comments.append(loop.create_task(ex.client.keepalive()))
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
                await sending  # every keepalive goes out before the event that follows it


async def _relay_event(ex: Exchange, upstream: dict[str, Any], final: bool = False) -> None:
    usage = upstream.get("usage")
    if usage is not None:
        _take_usage(ex, usage)
    choices = upstream.get("choices")
    if not choices:
        return
    if ex.first_token is None:
        ex.first_token = time.monotonic()
        assert ex.record is not None
        ex.record.upstream_id = upstream.get("id")
    splitter = ex.splitter
    deltas: list[Delta] = []
    for choice in choices:
        fields = choice.get("delta") or {}
        normalize_message(fields)
        native = choice.get("finish_reason")
        index = choice.get("index", 0)
        split = splitter is not None and index == 0
        if split:
            splitter.delta(fields, final or native is not None)  # type: ignore[union-attr]
        text = fields.get("content")
        if text:
            ex.produced.append(text)
            ex.content_parts.append(text)
        thought = fields.get("reasoning")
        if thought:
            ex.produced.append(thought)
        finish_reasoning(fields, ex.exclude_reasoning)
        if native is not None:
            ex.native_finish = native
        finish, error = ex.finish_reason(native), None
        if split and splitter.done:  # type: ignore[union-attr]
            finish, error = splitter.finish(finish)  # type: ignore[union-attr]
        if finish is not None and index == 0:
            ex.finish = finish
        deltas.append(Delta(index, fields, choice, finish, native, error))
    await ex.client.deltas(deltas)


def _take_usage(ex: Exchange, usage: Any) -> None:
    """The stream's content may already be with the client, so malformed usage cannot fail it:
    the usage is discarded and routeway's estimate is billed (``usage_rejected`` says why)."""
    try:
        counts = UsageCounts.from_upstream(usage)
    except MalformedUsage as bad:
        log.warning("generation %s: discarding the upstream's malformed usage: %s", ex.id, bad)
        ex.usage, ex.usage_rejected = None, bad.reason
        return
    if counts is not None:
        ex.usage, ex.usage_rejected = counts, None
