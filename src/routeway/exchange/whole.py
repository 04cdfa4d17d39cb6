"""The non-streaming half of an exchange: fetch the first whole answer (falling back until one comes,
with keepalives to the client meanwhile), normalize it into an ``Answer`` and check JSON answers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from routeway.errors import APIError
from routeway.exchange.core import Exchange
from routeway.exchange.events import Answer, Choice
from routeway.providers import UpstreamError
from routeway.routing.plan import Attempt
from routeway.transform import structured
from routeway.transform.normalize import normalize_message
from routeway.transform.reasoning import finish_reasoning
from routeway.transform.usage import MalformedUsage, UsageCounts

T = TypeVar("T")


async def first_whole(ex: Exchange, fetch: Callable[[Attempt, dict[str, Any]], Awaitable[T]]) -> T | None:
    """What ``fetch`` got from the first endpoint that answered (falling back until one does, with keepalives
    to the client meanwhile), or None when the client left first (the record is then cancelled)."""
    finished, result = await ex.client.unless_gone(ex.first_answer(fetch), keepalive=True)
    if not finished:
        ex.client_left = True
        if ex.record is not None:
            ex.record.cancelled = True
        return None
    assert result is not None and ex.record is not None
    ex.first_token = time.monotonic()
    return result


def checked_usage(ex: Exchange, attempt: Attempt, usage: Any) -> UsageCounts | None:
    """An answer's usage counts. Malformed usage makes the whole answer malformed: a 502 that falls back to
    the next endpoint and costs the client nothing."""
    try:
        return UsageCounts.from_upstream(usage)
    except MalformedUsage as bad:
        ex.note_usage_rejected(attempt, bad.reason)
        raise UpstreamError(502, f"upstream answered with malformed usage: {bad}") from None


async def complete(ex: Exchange) -> Answer | None:
    """The normalized answer, or None when the client left first (the record is then cancelled)."""
    answer = await first_whole(ex, lambda attempt, entry: _fetch(ex, attempt, entry))
    if answer is None:
        return None
    assert ex.record is not None
    upstream, ex.usage = answer
    choices: list[Choice] = []
    for position, choice in enumerate(upstream.get("choices") or []):
        message = choice.get("message") or {}
        normalize_message(message)
        native = choice.get("finish_reason")
        finish, error = ex.finish_reason(native), None
        if ex.splitter is not None:
            finish, error = ex.splitter.message(message, finish)
        ex.native_finish = ex.native_finish or native
        ex.finish = ex.finish or finish
        for text in (message.get("content"), message.get("reasoning")):
            if isinstance(text, str):
                ex.produced.append(text)
        finish_reasoning(message, ex.exclude_reasoning)
        choices.append(Choice(choice.get("index", position), message, choice, finish, native, error))
    ex.record.upstream_id = upstream.get("id")
    if structured.wants_json(ex.chat.response_format):
        _check_json(ex, choices)
    return Answer(choices, upstream.get("system_fingerprint"))


def _check_json(ex: Exchange, choices: list[Choice]) -> None:
    """Validate JSON answers after the reasoning block; heal when asked; strict means no invalid JSON."""
    fmt = ex.chat.response_format
    assert fmt is not None
    heal = any(p.get("id") == "response-healing" and p.get("enabled", True) is not False
               for p in ex.chat.plugins or ())
    for choice in choices:
        message = choice.message
        if message.get("tool_calls"):
            continue
        verdict = structured.check_answer(message.get("content"), fmt, heal)
        if verdict.healed:
            message["content"] = verdict.text
        if not verdict.ok:
            if structured.is_strict(fmt):
                raise APIError(502, f"The model's answer is not valid JSON for the requested schema (strict):"
                               f" {verdict.problem}. Nothing invalid was passed on; retrying may succeed.",
                               error_type="invalid_response")
            choice.error = {"code": 502, "message": verdict.problem, "metadata": {"error_type": "invalid_response"}}


async def _fetch(ex: Exchange, attempt: Attempt, entry: dict[str, Any]) -> tuple[dict[str, Any], UsageCounts | None]:
    call = await ex.open_upstream(attempt, False, entry)
    entry["status"] = call.upstream_status
    try:
        answer = await call.json()
    finally:
        call.close()
    return answer, checked_usage(ex, attempt, answer.get("usage"))
