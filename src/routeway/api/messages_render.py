"""Anthropic Messages on the wire: the exchange core's normalized events (exchange/events.py) as Anthropic's
``message`` JSON or its SSE stream — ``message_start``, ``ping``, ``content_block_start`` / ``_delta``
(``thinking_delta``, ``signature_delta``, ``text_delta``, ``input_json_delta``) / ``_stop`` per block,
``message_delta`` with ``stop_reason`` and usage, ``message_stop`` — and failures in Anthropic's error shape.

A stream's blocks never overlap: reasoning, text and each tool call open their own block, closing the one
before. Usage is known only once the exchange settles, so ``message_start`` carries routeway's prompt
estimate and ``message_delta`` the billed counts (clients take the later, cumulative counts)."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec

from routeway.api.disconnect import unless_client_leaves
from routeway.api.http import Request, Response, json_response
from routeway.errors import APIError
from routeway.exchange.events import Answer, Delta, Outcome
from routeway.transform.usage import UsageCounts

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
PING = b'event: ping\ndata: {"type":"ping"}\n\n'

# routeway's normalized finish reasons as Anthropic's stop reasons
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
# statuses as Anthropic's error types (its own, plus 402 as OpenRouter's Messages endpoint answers it)
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
               408: "timeout_error", 413: "request_too_large", 422: "invalid_request_error",
               429: "rate_limit_error", 503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def error_response(error: APIError) -> Response:
    return json_response(error_body(error.status, error.message), error.status, error.headers)


def event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(payload) + b"\n\n"


def stop_reason(finish: str | None, native: str | None) -> str:
    reason = STOP_REASONS.get(finish or "", "end_turn")
    return "stop_sequence" if reason == "end_turn" and native == "stop_sequence" else reason


def usage(counts: UsageCounts | None) -> dict[str, int]:
    """Anthropic counts cached prompt tokens beside ``input_tokens``, not within it."""
    counts = counts or UsageCounts()
    return {"input_tokens": counts.prompt - counts.cached, "output_tokens": counts.completion,
            "cache_read_input_tokens": counts.cached, "cache_creation_input_tokens": 0}


class AnthropicMessages:
    """Renders one Messages request's answer, streamed (SSE) or whole (JSON)."""

    def __init__(self, request: Request, stream: bool, generation_id: str, keepalive_seconds: float,
                 prompt_estimate: int) -> None:
        self.request = request
        self.stream = stream
        self.generation_id = generation_id
        self.keepalive_seconds = keepalive_seconds
        self.prompt_estimate = prompt_estimate
        self.show_metadata = request.headers.get("x-openrouter-metadata", "").lower() == "enabled"
        self.committed = False
        self.model = ""
        self.started = False  # message_start is out
        self.block: str | None = None  # the open content block's type
        self.index = -1  # the open (or last) block's index
        self.tool: int | None = None  # the tool call index the open tool_use block carries
        self.last_finish: str | None = None  # the choice's normalized finish reason, once it came
        self.native_finish: str | None = None
        self.choice_error: dict[str, Any] | None = None

    # ---- the client the core writes to ----------------------------------------------------------
    async def commit(self) -> None:
        self.committed = True
        content_type = SSE_HEADERS if self.stream else [(b"content-type", b"application/json")]
        await self.request.send({"type": "http.response.start", "status": 200,
                                 "headers": [*content_type, (b"x-generation-id", self.generation_id.encode())]})

    async def keepalive(self) -> None:
        """Pings while the upstream is silent (clients skip them). A whole answer gets none: its status
        must stay free for an error, and Anthropic's clients wait ten minutes for one."""
        if not self.stream:
            return
        if not self.committed:
            await self.commit()
        await self._send(PING)

    def begin(self, model: str, provider: str) -> None:
        self.model = model

    def deltas(self, deltas: list[Delta]) -> Awaitable[None]:
        out: list[bytes] = []
        if not self.started:
            self._start(out)
        for delta in deltas:
            if delta.index == 0:  # a Messages request asks for one choice
                self._delta(delta, out)
        return self._send(b"".join(out))

    def unless_gone(self, work: Awaitable[T], keepalive: bool) -> Awaitable[tuple[bool, T | None]]:
        if keepalive and self.stream:
            return unless_client_leaves(work, self.request, self.keepalive, self.keepalive_seconds)
        return unless_client_leaves(work, self.request)

    # ---- stream blocks --------------------------------------------------------------------------
    def _start(self, out: list[bytes]) -> None:
        self.started = True
        out.append(event("message_start", {"type": "message_start", "message": {
            "id": self.generation_id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.prompt_estimate, "output_tokens": 0}}}))
        out.append(PING)

    def _open(self, kind: str, block: dict[str, Any], out: list[bytes]) -> None:
        self._close(out)
        self.block, self.index = kind, self.index + 1
        out.append(event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                 "content_block": block}))

    def _close(self, out: list[bytes]) -> None:
        if self.block is not None:
            out.append(event("content_block_stop", {"type": "content_block_stop", "index": self.index}))
            self.block, self.tool = None, None

    def _block_delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        out.append(event("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta}))

    def _delta(self, delta: Delta, out: list[bytes]) -> None:
        details = delta.reasoning_details or ()
        for detail in details:
            if detail.get("type") == "reasoning.encrypted":
                self._open("redacted_thinking", {"type": "redacted_thinking", "data": str(detail.get("data", ""))}, out)
                self._close(out)
        thought = delta.reasoning
        if thought:
            if self.block != "thinking":
                self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._block_delta({"type": "thinking_delta", "thinking": thought}, out)
        for detail in details:
            signature = detail.get("signature")
            if detail.get("type") == "reasoning.text" and isinstance(signature, str) and signature:
                if self.block != "thinking":
                    self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
                self._block_delta({"type": "signature_delta", "signature": signature}, out)
        text = delta.text
        if text:
            if self.block != "text":
                self._open("text", {"type": "text", "text": ""}, out)
            self._block_delta({"type": "text_delta", "text": text}, out)
        for call in delta.tool_calls or ():
            function = call.get("function") or {}
            position = call.get("index", 0)
            if self.block != "tool_use" or position != self.tool:
                call_id = call.get("id") or f"toolu_{self.generation_id}_{position}"
                self._open("tool_use", {"type": "tool_use", "id": call_id, "name": function.get("name") or "",
                                        "input": {}}, out)
                self.tool = position
            arguments = function.get("arguments")
            if arguments:
                self._block_delta({"type": "input_json_delta", "partial_json": arguments}, out)
        if delta.finish is not None:
            self._close(out)
            self.last_finish, self.native_finish = delta.finish, delta.native_finish
            self.choice_error = self.choice_error or delta.error

    # ---- the end of the answer ------------------------------------------------------------------
    async def finish(self, outcome: Outcome) -> Response | None:
        if outcome.cancelled:
            return None
        if self.stream:
            await self._end_stream(outcome)
            return None
        if outcome.failure is not None:
            if not self.committed:
                return error_response(outcome.failure)
            await self._last(_encode(error_body(outcome.failure.status, outcome.failure.message)))
            return None
        assert outcome.answer is not None
        choice = outcome.answer.choices[0] if outcome.answer.choices else None
        if choice is not None and choice.error is not None:
            return error_response(_choice_failure(choice.error))
        payload = self._whole(outcome, outcome.answer)
        if not self.committed:
            return json_response(payload, extra_headers={"x-generation-id": self.generation_id})
        await self._last(_encode(payload))
        return None

    def _whole(self, outcome: Outcome, answer: Answer) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        finish = native = None
        if answer.choices:
            choice = answer.choices[0]
            content, finish, native = message_blocks(choice.message), choice.finish, choice.native_finish
        payload: dict[str, Any] = {
            "id": outcome.id, "type": "message", "role": "assistant", "model": outcome.model, "content": content,
            "stop_reason": stop_reason(finish, native), "stop_sequence": None, "usage": usage(outcome.usage)}
        if self.show_metadata and outcome.attempts:
            payload["openrouter_metadata"] = {"provider_responses": outcome.attempts}
        return payload

    async def _end_stream(self, outcome: Outcome) -> None:
        """Close the open block, then ``message_delta`` and ``message_stop``; a failure after the status
        line (an upstream failing mid-stream, an invalid tool call) ends the stream with an ``error`` event."""
        out: list[bytes] = []
        if not self.started:
            self.model = self.model or outcome.model
            self._start(out)
        self._close(out)
        failure = outcome.failure or (_choice_failure(self.choice_error) if self.choice_error else None)
        if failure is not None:
            out.append(event("error", error_body(failure.status, failure.message)))
        else:
            out.append(event("message_delta", {"type": "message_delta", "delta": {
                "stop_reason": stop_reason(self.last_finish, self.native_finish), "stop_sequence": None},
                "usage": usage(outcome.usage)}))
            out.append(event("message_stop", {"type": "message_stop"}))
        await self._last(b"".join(out))

    async def _send(self, body: bytes) -> None:
        await self.request.send({"type": "http.response.body", "body": body, "more_body": True})

    async def _last(self, body: bytes) -> None:
        await self.request.send({"type": "http.response.body", "body": body, "more_body": False})


def message_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole normalized message as Anthropic content blocks: thinking, text, tool uses."""
    blocks: list[dict[str, Any]] = []
    for detail in message.get("reasoning_details") or ():
        if detail.get("type") == "reasoning.text":
            blocks.append({"type": "thinking", "thinking": detail.get("text") or "",
                           "signature": detail.get("signature") or ""})
        elif detail.get("type") == "reasoning.encrypted":
            blocks.append({"type": "redacted_thinking", "data": str(detail.get("data", ""))})
    if not blocks and message.get("reasoning"):
        blocks.append({"type": "thinking", "thinking": message["reasoning"], "signature": ""})
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content:
        blocks.append({"type": "text", "text": content})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = None
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                       "input": arguments if isinstance(arguments, dict) else {}})
    return blocks


def _choice_failure(error: dict[str, Any]) -> APIError:
    status = error.get("code")
    return APIError(status if isinstance(status, int) and 400 <= status <= 599 else 502, str(error.get("message")))
