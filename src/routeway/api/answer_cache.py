"""The response cache (cache/) for the inbound APIs whose renderers know nothing of it: Anthropic Messages
and OpenAI Responses. A miss is recorded as the client receives it (the bytes its renderer sends) and kept
once the exchange settled as a complete answer; a hit is replayed in that API's own shape.

A replay is the kept bytes with the generation id rewritten (and, for Responses, the item ids made from
it) and the usage zeroed (cost 0), as chat completions' (api/chat_cache.py). A Messages stream replays its
events byte for byte apart from those ids and the closing ``message_delta``'s usage (``message_start``
keeps the prompt estimate it carried: clients take the later, cumulative counts); a Responses stream
replays its events (sequence numbers included) apart from the ids and the final ``response.completed``'s
usage."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from routeway.api import sse
from routeway.api.cache_hits import record_hit
from routeway.api.chat_cache import STATUS, hit_headers
from routeway.api.http import JSON_HEADERS, Request, Response
from routeway.api.messages_render import SSE_HEADERS as MESSAGES_SSE_HEADERS, usage as messages_usage
from routeway.cache.entry import AnswerRecording, CachedAnswer
from routeway.cache.policy import CachePolicy
from routeway.exchange.client import Renderer
from routeway.exchange.core import Exchange
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import KeyState
from routeway.ledger.ids import new_generation_id
from routeway.wire.chat import ChatRequest

if TYPE_CHECKING:
    from routeway.services import Services

_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode
_MESSAGE_DELTA = "event: message_delta\ndata: "
_COMPLETED = "event: response.completed\ndata: "


def _responses_usage() -> dict[str, Any]:
    return {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0, "cost": 0}


def _zero_event(text: str, marker: str, zero: Callable[[dict[str, Any]], None]) -> str | None:
    """The stream with the data of its last ``marker`` event passed through ``zero``; None without one."""
    head, found, tail = text.rpartition(marker)
    if not found:
        return None
    data, separator, rest = tail.partition("\n\n")
    payload: Any = _decode.decode(data)
    if not isinstance(payload, dict):
        return None
    zero(payload)
    return head + marker + _encode(payload).decode() + separator + rest


def _zero_messages(payload: dict[str, Any]) -> None:
    payload["usage"] = messages_usage(None)


def _zero_completed(payload: dict[str, Any]) -> None:
    response = payload.get("response")
    if isinstance(response, dict):
        response["usage"] = _responses_usage()


def complete(api: str, stream: bool, text: str) -> bool:
    """Whether the recorded answer ended as a whole, successful one of its API (a failure mid-stream ends
    with an ``error`` or ``response.failed`` event, and is not kept)."""
    if api == "messages":
        if stream:
            return "event: message_stop\n" in text and "\nevent: error\n" not in "\n" + text
        return '"type":"message"' in text
    if stream:
        return _COMPLETED in text
    try:
        payload: Any = _decode.decode(text)
    except msgspec.DecodeError:
        return False
    return isinstance(payload, dict) and payload.get("status") == "completed"


def rewrite(api: str, stream: bool, body: str, source_id: str, generation_id: str) -> bytes | None:
    """The kept answer as this hit sends it: new ids, zero usage. None when the entry cannot be read."""
    text = body.replace(source_id, generation_id)
    if api == "responses":  # item ids end with the generation id's last part (api/responses_render.py)
        text = text.replace(source_id.rsplit("-", 1)[-1], generation_id.rsplit("-", 1)[-1])
    try:
        if stream:
            marker, zero = (_MESSAGE_DELTA, _zero_messages) if api == "messages" else (_COMPLETED, _zero_completed)
            replaced = _zero_event(text, marker, zero)
            return None if replaced is None else replaced.encode()
        payload: Any = _decode.decode(text)
        if not isinstance(payload, dict):
            return None
        payload["usage"] = messages_usage(None) if api == "messages" else _responses_usage()
        return _encode(payload)
    except msgspec.DecodeError:
        return None


class AnswerCache:
    """One Messages or Responses request's use of the cache: ``lookup`` and ``replay`` before the
    exchange; ``prepare`` records it as it runs; ``keep`` after it."""

    def __init__(self, services: Services, request: Request, key: KeyState, api: str, chat: ChatRequest,
                 chosen: CachePolicy) -> None:
        self.services, self.request, self.key = services, request, key
        self.api, self.chat, self.stream, self.chosen = api, chat, chat.stream, chosen
        self.recording = AnswerRecording(services.response_cache.max_entry_bytes)
        self.exchange: Exchange | None = None
        self.status = 0
        self.generation_id = ""
        self.replay_body: bytes | None = None

    async def lookup(self) -> CachedAnswer | None:
        """A kept answer of this stream mode that can be replayed (an unreadable one is a miss, as a
        damaged entry is in cache/entry.py)."""
        entry = await self.services.response_cache.lookup(self.chosen)
        if entry is None or entry.stream != self.stream:
            return None
        self.generation_id = new_generation_id()
        self.replay_body = rewrite(self.api, self.stream, entry.body, entry.source_id, self.generation_id)
        return entry if self.replay_body is not None else None

    async def replay(self, entry: CachedAnswer) -> Response | None:
        """The answer ``lookup`` found, as a free generation with ``cache_hit``."""
        assert self.replay_body is not None
        now = now_ms()
        await record_hit(self.services, self.request, self.key, entry, self.chat, self.api, self.generation_id,
                         now)
        headers = [(b"x-generation-id", self.generation_id.encode()), *hit_headers(entry, now)]
        if not self.stream:
            return Response(self.replay_body, headers=[*JSON_HEADERS, *headers])
        content_type = MESSAGES_SSE_HEADERS if self.api == "messages" else sse.HEADERS
        await self.request.send({"type": "http.response.start", "status": 200, "headers": [*content_type, *headers]})
        await self.request.send({"type": "http.response.body", "body": self.replay_body, "more_body": False})
        return None

    def prepare(self, renderer: Renderer, exchange: Exchange) -> None:
        """Record what the renderer sends, and mark the answer a MISS."""
        self.exchange = exchange
        downstream = self.request.send
        miss = [(STATUS, b"MISS"), (b"x-openrouter-cache-ttl", b"%d" % self.chosen.ttl_seconds)]

        async def recorded(message: Any) -> None:
            nonlocal downstream
            if message["type"] == "http.response.start":
                self.status = message["status"]
                await downstream({**message, "headers": [*message["headers"], *miss]})
                # the app swaps in its bare send once the status is out (app.py): keep recording after it
                downstream, self.request.send = self.request.send, recorded
                return
            if message["type"] == "http.response.body":
                self.recording.add(message.get("body", b""))
            await downstream(message)

        self.request.send = recorded

    async def keep(self, response: Response | None) -> Response | None:
        """Keep a complete, successful answer (a whole one not yet sent is ``response``); pass it on."""
        if response is not None:
            self.status = response.status
            self.recording.add(response.body)
            if response.status == 200:
                response.headers = [*response.headers, (STATUS, b"MISS"),
                                    (b"x-openrouter-cache-ttl", b"%d" % self.chosen.ttl_seconds)]
        exchange = self.exchange
        record = exchange.record if exchange is not None else None
        text = self.recording.text()
        if (exchange is None or record is None or text is None or self.status != 200 or record.status != 200
                or exchange.client_left or not complete(self.api, self.stream, text)):
            return response
        await self.services.response_cache.keep(self.chosen, self.key.account_id, CachedAnswer(
            source_id=exchange.id, created_at=now_ms(), ttl_seconds=self.chosen.ttl_seconds, stream=self.stream,
            model=record.model, provider_name=record.provider_name, provider_slug=record.provider_slug,
            upstream_model=record.upstream_model, finish_reason=record.finish_reason,
            native_finish_reason=record.native_finish_reason, cost_nano=record.total_cost_nano, body=text))
        return response



def cached_answers(services: Services, request: Request, key: KeyState, api: str, chat: ChatRequest,
                   raw: bytes) -> AnswerCache | None:
    """The request's use of the cache, None when it does not use it (cache/policy.py decides)."""
    chosen = services.response_cache.policy(request.headers, key, api, chat.stream, raw)
    return None if chosen is None else AnswerCache(services, request, key, api, chat, chosen)
