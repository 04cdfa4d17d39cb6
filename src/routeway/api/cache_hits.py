"""A response cache hit as a generation: its free ledger record (``cache_hit``, what it saved, the API it
came by) and what observers are told of it (observe/: a span, the full JSON log line, the account's
destinations), as an exchange's would be — a hit runs no exchange, so the core tells them nothing."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from routeway.api.http import Request
from routeway.cache.entry import CachedAnswer
from routeway.ledger.book import KeyState
from routeway.ledger.metering import GenerationRecord
from routeway.observe.ids import REQUEST_ID
from routeway.observe.summary import CacheHit, Finished
from routeway.wire.chat import ChatRequest

if TYPE_CHECKING:
    from routeway.services import Services

log = logging.getLogger("routeway.cache")
_decode = msgspec.json.Decoder()


async def record_hit(services: Services, request: Request, key: KeyState, entry: CachedAnswer, chat: ChatRequest,
                     api: str, generation_id: str, now: int) -> None:
    """A hit's generation: free, with ``cache_hit`` and what it saved, by the inbound API it came in by."""
    headers = request.headers
    record = GenerationRecord(
        id=generation_id, account_id=key.account_id, key_hash=key.hash, model=entry.model,
        provider_name=entry.provider_name, provider_slug=entry.provider_slug, upstream_model=entry.upstream_model,
        prompt_nano_per_m=0, completion_nano_per_m=0, streamed=chat.stream, created_at=now,
        http_referer=headers.get("http-referer"), app_title=headers.get("x-openrouter-title") or headers.get("x-title"),
        finish_reason=entry.finish_reason, native_finish_reason=entry.native_finish_reason, latency_ms=0,
        generation_time_ms=0, cache_hit=True, cache_saved_nano=entry.cost_nano, api=api)
    await services.metering.finish(services.metering.reserve(key, 0, 0, 0), record)
    if services.watchers:
        _tell(services, request, key, entry, chat, api, generation_id, now)


def _tell(services: Services, request: Request, key: KeyState, entry: CachedAnswer, chat: ChatRequest, api: str,
          generation_id: str, now: int) -> None:
    headers = request.headers
    hit = CacheHit(
        Finished(request_id=headers.get(REQUEST_ID, ""), generation_id=generation_id, account_id=key.account_id,
                 key_hash=key.hash, requested_model=chat.model or "", model=entry.model,
                 provider=entry.provider_slug, status=200, cost_nano=0, tokens_prompt=0, tokens_completion=0,
                 finish_reason=entry.finish_reason, stream=chat.stream, cancelled=False, started_ms=now,
                 latency_ms=0, ttft_ms=None, error=None,
                 session_id=chat.session_id or headers.get("x-session-id"), user=chat.user, api=api,
                 cache_hit=True, cache_saved_nano=entry.cost_nano),
        headers, chat.messages or [{"role": "user", "content": chat.prompt or ""}],
        completion_text(api, entry.stream, entry.body), entry.source_id)
    # the tracer first: the others put the hit in the trace its span opened
    for watcher in sorted(services.watchers, key=lambda w: w is not services.tracing):
        try:
            watcher.cache_hit(hit)
        except Exception:  # an observer's bug must not touch the answer
            log.exception("observer %s failed on cache hit %s", type(watcher).__name__, generation_id)


def completion_text(api: str, stream: bool, body: str) -> str:
    """The kept answer's text (its first choice's), read from the bytes as they were sent; what cannot be
    read gives an empty text, never a failure."""
    try:
        if not stream:
            return _whole_text(api, _decode.decode(body))
        return "".join(_delta_text(api, _decode.decode(line[6:])) for line in body.split("\n")
                       if line.startswith("data: {"))
    except (msgspec.DecodeError, TypeError, AttributeError, IndexError, KeyError):
        return ""


def _whole_text(api: str, payload: Any) -> str:
    if api == "messages":
        return "".join(b.get("text", "") for b in payload.get("content") or () if b.get("type") == "text")
    if api == "responses":
        return "".join(part.get("text", "") for item in payload.get("output") or () if item.get("type") == "message"
                       for part in item.get("content") or () if part.get("type") == "output_text")
    content = payload["choices"][0]["message"].get("content")
    return content if isinstance(content, str) else ""


def _delta_text(api: str, event: Any) -> str:
    if api == "messages":
        delta = event.get("delta") or {}
        return str(delta.get("text", "")) if delta.get("type") == "text_delta" else ""
    if api == "responses":
        return str(event.get("delta", "")) if event.get("type") == "response.output_text.delta" else ""
    choices = event.get("choices") or ()
    if not choices or choices[0].get("index", 0) != 0:
        return ""
    return str((choices[0].get("delta") or {}).get("content") or "")

