"""Chat completions and the response cache (cache/): a hit replayed in the shape it was kept in, and a
miss recorded as it is sent and kept once complete.

A hit is the kept answer with a new generation id and zeroed usage (cost 0), as OpenRouter's. A whole
answer keeps every other field as it was (``created`` included); a stream replays its content events
byte for byte, the ``id`` of each chunk alone rewritten, followed by a new usage chunk and ``[DONE]``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from routeway.api import sse
from routeway.api.cache_hits import record_hit
from routeway.api.chat_render import ChatCompletions
from routeway.api.http import JSON_HEADERS, Request, Response
from routeway.cache.entry import AnswerRecording, CachedAnswer
from routeway.cache.policy import CachePolicy
from routeway.exchange.core import Exchange
from routeway.exchange.events import Outcome
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import KeyState
from routeway.ledger.ids import new_generation_id
from routeway.transform.usage import UsageCounts
from routeway.wire.chat import ChatRequest

if TYPE_CHECKING:
    from routeway.services import Services

STATUS = b"x-openrouter-cache-status"
_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


def hit_headers(entry: CachedAnswer, now: int) -> list[tuple[bytes, bytes]]:
    return [(STATUS, b"HIT"), (b"x-openrouter-cache-age", b"%d" % entry.age_seconds(now)),
            (b"x-openrouter-cache-ttl", b"%d" % entry.left_seconds(now)),
            (b"x-openrouter-cache-source-id", entry.source_id.encode())]


def record_misses(services: Services, renderer: ChatCompletions, exchange: Exchange, chosen: CachePolicy,
                  key: KeyState) -> None:
    """Record the answer as it is sent; keep it once it is complete (chat_render.ChatCompletions._keep)."""
    cache = services.response_cache
    recording = AnswerRecording(cache.max_entry_bytes)
    renderer.recording = recording
    renderer.headers += [(STATUS, b"MISS"), (b"x-openrouter-cache-ttl", b"%d" % chosen.ttl_seconds)]

    async def keep(outcome: Outcome) -> None:
        record, body = exchange.record, recording.text()
        if record is None or body is None or record.status != 200 or exchange.finish == "error":
            return
        if outcome.answer is not None and any(c.error is not None for c in outcome.answer.choices):
            return
        await cache.keep(chosen, key.account_id, CachedAnswer(
            source_id=exchange.id, created_at=now_ms(), ttl_seconds=chosen.ttl_seconds, stream=renderer.stream,
            model=record.model, provider_name=record.provider_name, provider_slug=record.provider_slug,
            upstream_model=record.upstream_model, finish_reason=record.finish_reason,
            native_finish_reason=record.native_finish_reason, cost_nano=record.total_cost_nano, body=body))

    renderer.keep = keep


async def replay(services: Services, request: Request, chat: ChatRequest, key: KeyState,
                 entry: CachedAnswer) -> Response | None:
    """Answer from the cache: recorded as a free generation with ``cache_hit``, no reservation charged."""
    generation_id, now = new_generation_id(), now_ms()
    await record_hit(services, request, key, entry, chat, "chat", generation_id, now)
    wire_headers = [(b"x-generation-id", generation_id.encode()), *hit_headers(entry, now)]
    if not chat.stream:
        payload: Any = _decode.decode(entry.body)
        payload["id"] = generation_id
        payload["usage"] = _free_usage()
        return Response(_encode(payload), headers=[*JSON_HEADERS, *wire_headers])
    events = entry.body.replace(f'"id":"{entry.source_id}"', f'"id":"{generation_id}"').encode()
    final = {"id": generation_id, "object": "chat.completion.chunk", "created": int(time.time()),
             "model": entry.model, "provider": entry.provider_name, "choices": [], "usage": _free_usage()}
    await request.send({"type": "http.response.start", "status": 200, "headers": [*sse.HEADERS, *wire_headers]})
    await request.send({"type": "http.response.body", "body": sse.PROCESSING + events + sse.event(final) + sse.DONE,
                        "more_body": False})
    return None


def _free_usage() -> dict[str, Any]:
    return UsageCounts().to_wire(0.0)
