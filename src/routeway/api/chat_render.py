"""Chat completions on the wire: the exchange core's normalized events (exchange/events.py) as
OpenRouter's JSON answer or its SSE stream. One such renderer per inbound API; this one is the client
side the core writes to (exchange/client.py): status line, keepalives, chunks, and the end of the answer."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from routeway.api import sse
from routeway.api.disconnect import unless_client_leaves
from routeway.api.http import JSON_HEADERS, Request, Response, json_response
from routeway.cache.entry import AnswerRecording
from routeway.errors import STORE_UNAVAILABLE
from routeway.exchange.events import Answer, Delta, Outcome
from routeway.ledger.money import nano_to_usd
from routeway.transform.usage import UsageCounts

T = TypeVar("T")


class ChatCompletions:
    """Renders one chat completion request's answer, streamed (SSE) or whole (JSON)."""

    __slots__ = ("request", "stream", "generation_id", "keepalive_seconds", "show_metadata", "committed", "choices",
                 "chunk", "headers", "recording", "keep")
    CHUNK_OBJECT = "chat.completion.chunk"  # a streamed chunk's ``object``; the closing chunks carry it too
    # the choice of a stream's closing error chunk
    FAILED_CHOICE: ClassVar[dict[str, Any]] = {"index": 0, "delta": {"content": ""}, "finish_reason": "error",
                                               "native_finish_reason": None}

    def __init__(self, request: Request, stream: bool, generation_id: str, keepalive_seconds: float) -> None:
        self.request = request
        self.stream = stream
        self.generation_id = generation_id
        self.keepalive_seconds = keepalive_seconds
        self.show_metadata = request.headers.get("x-openrouter-metadata", "").lower() == "enabled"
        self.committed = False
        self.choices: list[dict[str, Any]] = []  # one list and one chunk dict per stream, refilled per chunk
        self.chunk: dict[str, Any] = {}
        self.headers: list[tuple[bytes, bytes]] = [(b"x-generation-id", generation_id.encode())]
        # the response cache (cache/): the answer's bytes as sent, and what keeps them once it is complete
        self.recording: AnswerRecording | None = None
        self.keep: Callable[[Outcome], Awaitable[None]] | None = None

    # ---- the client the core writes to ----------------------------------------------------------
    async def commit(self) -> None:
        self.committed = True
        content_type = sse.HEADERS if self.stream else [(b"content-type", b"application/json")]
        await self.request.send({"type": "http.response.start", "status": 200,
                                 "headers": [*content_type, *self.headers]})
        if self.stream:
            await self._send(sse.PROCESSING)

    async def keepalive(self) -> None:
        """A stream gets a PROCESSING comment; a slow whole answer commits to 200 and gets whitespace, so
        clients' read timeouts (the openrouter SDK's is 5 s) do not fire: JSON parsers skip it."""
        if not self.committed:
            await self.commit()
            if self.stream:
                return
        await self._send(sse.PROCESSING if self.stream else b"\n")

    def begin(self, model: str, provider: str) -> None:
        self.chunk = {"id": self.generation_id, "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": model, "provider": provider, "choices": self.choices}

    def deltas(self, deltas: list[Delta]) -> Awaitable[None]:
        # the chunk dict is reused (encoded at once), and the upstream's choice dicts are written in place:
        # no allocation per chunk beyond the encoded bytes; a plain function returning the send, so a
        # chunk costs no extra coroutine
        choices = self.choices
        choices.clear()
        for delta in deltas:
            choice = delta.choice
            choice["delta"] = delta.fields
            choice["native_finish_reason"] = delta.native_finish
            choice["finish_reason"] = delta.finish
            if delta.error is not None:
                choice["error"] = delta.error
            choices.append(choice)
        event = sse.event(self.chunk)
        if self.recording is not None:
            self.recording.add(event)
        return self.request.send({"type": "http.response.body", "body": event, "more_body": True})

    def unless_gone(self, work: Awaitable[T], keepalive: bool) -> Awaitable[tuple[bool, T | None]]:
        # a plain function handing back the watcher's coroutine: no coroutine layer of its own, which every
        # resumption of the request's task (each upstream read, the commit) would pass through
        if keepalive:
            return unless_client_leaves(work, self.request, self.keepalive, self.keepalive_seconds)
        return unless_client_leaves(work, self.request)

    # ---- the end of the answer ------------------------------------------------------------------
    async def finish(self, outcome: Outcome) -> Response | None:
        """The answer once settled: the whole JSON answer, or the stream's closing chunks and [DONE]."""
        if outcome.cancelled:
            return None
        if self.stream:
            await self._end_stream(outcome)
            return None
        if outcome.failure is not None:  # headers went out as 200 already: the error travels in the body
            body = json_response(outcome.failure.body()).body
        else:
            assert outcome.answer is not None
            payload = self._whole(outcome, outcome.answer)
            await self._keep(outcome)
            self._add_metadata(payload, outcome)
            if not self.committed:
                return Response(json_response(payload).body, headers=[*JSON_HEADERS, *self.headers])
            body = json_response(payload).body
        await self.request.send({"type": "http.response.body", "body": body, "more_body": False})
        return None

    def _whole(self, outcome: Outcome, answer: Answer) -> dict[str, Any]:
        choices = []
        for choice in answer.choices:
            wire = choice.choice
            wire["message"] = choice.message
            wire["native_finish_reason"] = choice.native_finish
            wire["finish_reason"] = choice.finish
            if choice.error is not None:
                wire["error"] = choice.error
            choices.append(wire)
        payload = {"id": outcome.id, "object": "chat.completion", "created": int(time.time()), "model": outcome.model,
                   "provider": outcome.provider, "system_fingerprint": answer.system_fingerprint, "choices": choices,
                   "usage": _usage(outcome)}
        if self.recording is not None:
            self.recording.add(json_response(payload).body)
        return payload

    async def _end_stream(self, outcome: Outcome) -> None:
        """An error chunk if the stream failed after its status line (every attempt failing, an upstream
        failing mid-stream, an invalid strict JSON answer, an internal error); an extra one if the store
        could not write the settlement (held, written later); the usage chunk; [DONE]."""
        head = {"id": outcome.id, "object": self.CHUNK_OBJECT, "created": int(time.time()),
                "model": outcome.model, "provider": outcome.provider}
        tail = b""
        if outcome.failure is not None:
            tail += sse.event({**head, "error": outcome.failure.body()["error"], "choices": [self.FAILED_CHOICE]})
        if outcome.held:
            problem = outcome.store_problem
            tail += sse.event({**head, "choices": [], "error": {
                "code": 503, "metadata": {"error_type": STORE_UNAVAILABLE, "store": problem},
                "message": f"The answer above was delivered, but routeway could not record it yet"
                           f" ({problem or 'the store cannot write'}). Its charge of"
                           f" ${nano_to_usd(outcome.cost_nano):.6f} is held on your account and is recorded"
                           f" as soon as the store can write again; do not retry this request."}})
        final: dict[str, Any] = {**head, "choices": [], "usage": _usage(outcome)}
        self._add_metadata(final, outcome)
        await self._keep(outcome)
        await self.request.send({"type": "http.response.body", "body": tail + sse.event(final) + sse.DONE,
                                 "more_body": False})

    async def _keep(self, outcome: Outcome) -> None:
        """A complete answer is handed to the response cache before its last bytes go out, so a repeat
        sent the moment this one ends finds it; errors, held charges and partial streams never are."""
        if self.keep is not None and outcome.failure is None and not outcome.held and not outcome.cancelled:
            await self.keep(outcome)

    def _add_metadata(self, payload: dict[str, Any], outcome: Outcome) -> None:
        if self.show_metadata and outcome.attempts:
            payload["openrouter_metadata"] = {"provider_responses": outcome.attempts}

    async def _send(self, body: bytes) -> None:
        await self.request.send({"type": "http.response.body", "body": body, "more_body": True})


def _usage(outcome: Outcome) -> dict[str, Any]:
    return (outcome.usage or UsageCounts()).to_wire(nano_to_usd(outcome.cost_nano))
