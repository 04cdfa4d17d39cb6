"""OpenAI Responses on the wire: the exchange core's normalized events (exchange/events.py) as a Response
object (JSON) or its typed SSE event sequence, each event with its ``sequence_number``.

One state machine builds the output items for both: streamed deltas drive it event by event, a whole
answer is fed through it as one delta and only the finished items are kept. Reasoning becomes a
``reasoning`` item (its text as ``reasoning_text`` content, or as the summary when the request asked for
one: routeway has no summarizer, so the reasoning stands in for its summary), text a ``message`` item,
each tool call a ``function_call`` item. The reasoning details an upstream needs back (Anthropic's
thinking signatures) travel in ``encrypted_content`` when ``include`` asks for it (api/responses.py reads
them back)."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec

from routeway.api import sse
from routeway.api.disconnect import unless_client_leaves
from routeway.api.http import Request, Response, json_response
from routeway.errors import APIError
from routeway.exchange.events import Delta, Outcome
from routeway.ledger.money import nano_to_usd
from routeway.transform.usage import UsageCounts
from routeway.wire.responses import ResponsesRequest

T = TypeVar("T")

REASONING_PREFIX = "rw1."  # encrypted_content routeway wrote: base64url of the reasoning details (not a secret)
_encode = msgspec.json.Encoder().encode
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# a failed Response's error code (OpenRouter's ResponsesErrorField) per HTTP status; otherwise a server error
_CODES = {400: "invalid_prompt", 413: "invalid_prompt", 422: "invalid_prompt", 429: "rate_limit_exceeded"}
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
          403: "permission_error", 404: "not_found_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error"}


def pack_reasoning(details: list[dict[str, Any]]) -> str:
    return REASONING_PREFIX + base64.urlsafe_b64encode(_encode(details)).decode()


def error_body(status: int, message: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """OpenRouter's error envelope (``code`` is the HTTP status, ``metadata.error_type`` says why), which
    carries OpenAI's error fields too (``type``, ``param``), so the openai SDK reads it as its own."""
    return {"error": {"code": status, "message": message, "type": _TYPES.get(status, "server_error"),
                      "param": metadata.get("param"), "metadata": metadata}}


def error_response(error: APIError) -> Response:
    return json_response(error_body(error.status, error.message, error.metadata), error.status, error.headers)


class ResponsesRenderer:
    """Renders one Responses request's answer, streamed (SSE events) or whole (JSON)."""

    def __init__(self, request: Request, req: ResponsesRequest, generation_id: str, keepalive_seconds: float) -> None:
        self.request = request
        self.stream = req.stream
        self.generation_id = generation_id
        self.keepalive_seconds = keepalive_seconds
        self.summary = bool(req.reasoning and (req.reasoning.summary or req.reasoning.generate_summary))
        self.encrypted = "reasoning.encrypted_content" in (req.include or ())
        self.echo = _echo(req)
        self.model = req.model or (req.models[0] if req.models else "")
        self.provider: str | None = None
        self.created_at = int(time.time())
        self.committed = False
        self.announced = False  # response.created and response.in_progress are out
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open_item: dict[str, Any] | None = None  # the open message or reasoning item
        self.calls: dict[int, dict[str, Any]] = {}  # the chat tool call index -> its function_call item
        self.open_calls: list[dict[str, Any]] = []
        self.texts: dict[str, list[str]] = {}  # item id -> its text (or arguments) so far
        self.details: dict[str, list[dict[str, Any]]] = {}  # reasoning item id -> its reasoning details
        self.error: dict[str, Any] | None = None  # a choice's error (an unparsable tool call, invalid JSON)
        self.finish_reason: str | None = None
        self.suffix = generation_id.rsplit("-", 1)[-1]

    # ---- the client the core writes to ----------------------------------------------------------
    async def commit(self) -> None:
        self.committed = True
        content_type = sse.HEADERS if self.stream else [(b"content-type", b"application/json")]
        await self.request.send({"type": "http.response.start", "status": 200,
                                 "headers": [*content_type, (b"x-generation-id", self.generation_id.encode())]})
        if self.stream:
            await self._send(sse.PROCESSING)

    async def keepalive(self) -> None:
        if not self.committed:
            await self.commit()
            if self.stream:
                return
        await self._send(sse.PROCESSING if self.stream else b"\n")

    def begin(self, model: str, provider: str) -> None:
        self.model, self.provider = model, provider

    def deltas(self, deltas: list[Delta]) -> Awaitable[None]:
        events: list[dict[str, Any]] = []
        for delta in deltas:
            if delta.index == 0:  # the Responses API has one output: further choices are not rendered
                self._apply(delta.fields, events)
                self._note_finish(delta.finish, delta.error)
        return self._send(self._frame(events))

    def unless_gone(self, work: Awaitable[T], keepalive: bool) -> Awaitable[tuple[bool, T | None]]:
        if keepalive:
            return unless_client_leaves(work, self.request, self.keepalive, self.keepalive_seconds)
        return unless_client_leaves(work, self.request)

    # ---- the end of the answer ------------------------------------------------------------------
    async def finish(self, outcome: Outcome) -> Response | None:
        if outcome.cancelled:
            return None
        self.model = outcome.model or self.model
        self.provider = outcome.provider or self.provider
        events: list[dict[str, Any]] = []
        if outcome.answer is not None and outcome.answer.choices:
            choice = outcome.answer.choices[0]
            self._apply(choice.message, events)
            self._note_finish(choice.finish, choice.error)
        failure = outcome.failure.body()["error"] if outcome.failure is not None else self.error
        status, incomplete = "completed", None
        if failure is not None:
            status = "failed"
        elif self.finish_reason in _INCOMPLETE:
            status, incomplete = "incomplete", {"reason": _INCOMPLETE[self.finish_reason]}
        self._close_all(events, "completed" if status == "completed" else "incomplete")
        response = self._response(status, outcome)
        response["incomplete_details"] = incomplete
        if failure is not None:
            response["error"] = {"code": _CODES.get(failure["code"], "server_error"), "message": failure["message"]}
        if outcome.held:
            response["warning"] = (f"The answer was delivered, but routeway could not record it yet"
                                   f" ({outcome.store_problem or 'the store cannot write'}). Its charge of"
                                   f" ${nano_to_usd(outcome.cost_nano):.6f} is held on your account and is recorded"
                                   " as soon as the store can write again; do not retry this request.")
        if self.stream:
            events.append({"type": f"response.{status}", "response": response})
            await self.request.send({"type": "http.response.body", "body": self._frame(events), "more_body": False})
            return None
        if not self.committed:
            return json_response(response, extra_headers={"x-generation-id": self.generation_id})
        await self.request.send({"type": "http.response.body", "body": _encode(response), "more_body": False})
        return None

    # ---- the output items -----------------------------------------------------------------------
    def _apply(self, fields: dict[str, Any], events: list[dict[str, Any]]) -> None:
        """One normalized delta (or a whole message) into items and events, in the order items open.
        The fields are the upstream's (untrusted): what has the wrong type is not rendered."""
        thought, details = _typed(fields, "reasoning", str), _typed(fields, "reasoning_details", list)
        if thought or details:
            item = self._item("reasoning", events)
            if details:
                _merge_details(self.details[item["id"]], details)
            if thought:
                self._text(item, thought, events)
        text = _typed(fields, "content", str)
        if text:
            self._text(self._item("message", events), text, events)
        for call in _typed(fields, "tool_calls", list) or ():
            if isinstance(call, dict):
                self._call_delta(call, events)

    def _item(self, kind: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """The open item of this kind, or a new one (closing what was open)."""
        if self.open_item is not None and self.open_item["type"] == kind:
            return self.open_item
        self._close_all(events, "completed")
        if kind == "reasoning":
            item: dict[str, Any] = {"type": "reasoning", "id": f"rs_{self.suffix}_{len(self.output)}", "summary": [],
                                    "status": "in_progress"}
            if not self.summary:
                item["content"] = []
            self.details[item["id"]] = []
        else:
            item = {"type": "message", "id": f"msg_{self.suffix}_{len(self.output)}", "role": "assistant",
                    "status": "in_progress", "content": []}
        self._open(item, events)
        self.open_item = item
        return item

    def _open(self, item: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self.output.append(item)
        self.texts[item["id"]] = []
        events.append({"type": "response.output_item.added", "output_index": len(self.output) - 1,
                       "item": _snapshot(item)})

    def _text(self, item: dict[str, Any], text: str, events: list[dict[str, Any]]) -> None:
        parts = self.texts[item["id"]]
        where = {"item_id": item["id"], "output_index": self.output.index(item)}
        if item["type"] == "message":
            if not parts:
                events.append({"type": "response.content_part.added", **where, "content_index": 0,
                               "part": {"type": "output_text", "text": "", "annotations": []}})
            events.append({"type": "response.output_text.delta", **where, "content_index": 0, "delta": text,
                           "logprobs": []})
        elif self.summary:
            if not parts:
                events.append({"type": "response.reasoning_summary_part.added", **where, "summary_index": 0,
                               "part": {"type": "summary_text", "text": ""}})
            events.append({"type": "response.reasoning_summary_text.delta", **where, "summary_index": 0,
                           "delta": text})
        else:
            if not parts:
                events.append({"type": "response.content_part.added", **where, "content_index": 0,
                               "part": {"type": "reasoning_text", "text": ""}})
            events.append({"type": "response.reasoning_text.delta", **where, "content_index": 0, "delta": text})
        parts.append(text)

    def _call_delta(self, call: dict[str, Any], events: list[dict[str, Any]]) -> None:
        index = _typed(call, "index", int)
        if index is None:  # a whole answer's calls carry none; a stream's always do
            index = len(self.calls)
        function = _typed(call, "function", dict) or {}
        item = self.calls.get(index)
        if item is None:
            self._close_all(events, "completed")
            call_id = _typed(call, "id", str) or f"call_{self.suffix}_{index}"
            item = {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id,
                    "name": _typed(function, "name", str) or "", "arguments": "", "status": "in_progress"}
            self.calls[index] = item
            self.open_calls.append(item)
            self._open(item, events)
        arguments = _typed(function, "arguments", str)
        if arguments:
            self.texts[item["id"]].append(arguments)
            events.append({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                           "output_index": self.output.index(item), "delta": arguments})

    def _close_all(self, events: list[dict[str, Any]], status: str) -> None:
        if self.open_item is not None:
            self._close(self.open_item, events, status)
            self.open_item = None
        for item in self.open_calls:
            self._close(item, events, status)
        self.open_calls.clear()

    def _close(self, item: dict[str, Any], events: list[dict[str, Any]], status: str) -> None:
        text = "".join(self.texts[item["id"]])
        where = {"item_id": item["id"], "output_index": self.output.index(item)}
        kind = item["type"]
        if kind == "message":
            part = {"type": "output_text", "text": text, "annotations": []}
            item["content"] = [part]
            events += [{"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []},
                       {"type": "response.content_part.done", **where, "content_index": 0, "part": part}]
        elif kind == "reasoning":
            details = self.details[item["id"]]
            if text and self.summary:
                part = {"type": "summary_text", "text": text}
                item["summary"] = [part]
                events += [{"type": "response.reasoning_summary_text.done", **where, "summary_index": 0, "text": text},
                           {"type": "response.reasoning_summary_part.done", **where, "summary_index": 0, "part": part}]
            elif text:
                part = {"type": "reasoning_text", "text": text}
                item["content"] = [part]
                events += [{"type": "response.reasoning_text.done", **where, "content_index": 0, "text": text},
                           {"type": "response.content_part.done", **where, "content_index": 0, "part": part}]
            item["encrypted_content"] = pack_reasoning(details) if self.encrypted and details else None
        else:
            item["arguments"] = text
            events.append({"type": "response.function_call_arguments.done", **where, "name": item["name"],
                           "arguments": text})
        item["status"] = status
        events.append({"type": "response.output_item.done", "output_index": where["output_index"],
                       "item": _snapshot(item)})

    def _note_finish(self, finish: str | None, error: dict[str, Any] | None) -> None:
        if finish is not None:
            self.finish_reason = finish
        if error is not None:
            self.error = error

    # ---- the response object and the wire -------------------------------------------------------
    def _response(self, status: str, outcome: Outcome | None = None) -> dict[str, Any]:
        response: dict[str, Any] = {
            "id": self.generation_id, "object": "response", "created_at": self.created_at, "status": status,
            "model": self.model, "output": self.output if outcome is not None else [], "error": None,
            "incomplete_details": None, **self.echo, "usage": None}
        if self.provider is not None:
            response["provider"] = self.provider
        if outcome is not None:
            response["usage"] = _usage(outcome)
        return response

    def _frame(self, events: list[dict[str, Any]]) -> bytes:
        if not self.announced and self.stream:
            self.announced = True
            start = self._response("in_progress")
            events[:0] = [{"type": "response.created", "response": start},
                          {"type": "response.in_progress", "response": start}]
        out = bytearray()
        for event in events:
            event["sequence_number"] = self.sequence
            self.sequence += 1
            out += b"event: " + event["type"].encode() + b"\ndata: " + _encode(event) + b"\n\n"
        return bytes(out)

    async def _send(self, body: bytes) -> None:
        await self.request.send({"type": "http.response.body", "body": body, "more_body": True})


def _typed(fields: dict[str, Any], name: str, kind: type[T]) -> T | None:
    value = fields.get(name)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _snapshot(item: dict[str, Any]) -> dict[str, Any]:
    """The item as it stands (events are encoded at once, but later changes must not reach earlier ones)."""
    return {key: (list(value) if isinstance(value, list) else value) for key, value in item.items()}


def _merge_details(into: list[dict[str, Any]], pieces: list[Any]) -> None:
    """Streamed reasoning details come in pieces of one detail (same ``index``): text appended, the
    signature set when it arrives (an upstream's details are untrusted: what is not an object is skipped)."""
    for piece in pieces:
        if not isinstance(piece, dict):
            continue
        last = into[-1] if into else None
        if (last is not None and last.get("index") == piece.get("index") and last.get("type") == piece.get("type")
                and piece.get("type") == "reasoning.text"):
            last["text"] = (last.get("text") or "") + (piece.get("text") or "")
            if piece.get("signature"):
                last["signature"] = piece["signature"]
        else:
            into.append(dict(piece))


def _usage(outcome: Outcome) -> dict[str, Any]:
    usage = outcome.usage or UsageCounts()
    return {"input_tokens": usage.prompt,
            "input_tokens_details": {"cached_tokens": usage.cached, "cache_write_tokens": _cache_writes(usage)},
            "output_tokens": usage.completion, "output_tokens_details": {"reasoning_tokens": usage.reasoning},
            "total_tokens": usage.prompt + usage.completion, "cost": nano_to_usd(outcome.cost_nano)}


def _cache_writes(usage: UsageCounts) -> int:
    """The upstream's claim of prompt tokens written to its cache (Anthropic's cache_creation), shown only
    as a count within the billed prompt tokens: it is not billed separately."""
    details = usage.native.get("prompt_tokens_details") if isinstance(usage.native, dict) else None
    written = details.get("cache_write_tokens") if isinstance(details, dict) else None
    return min(written, usage.prompt) if type(written) is int and written > 0 else 0


def _echo(req: ResponsesRequest) -> dict[str, Any]:
    """The request's settings a Response object repeats."""
    reasoning = req.reasoning
    return {
        "instructions": req.instructions, "tools": req.tools or [], "tool_choice": req.tool_choice or "auto",
        "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
        "temperature": req.temperature, "top_p": req.top_p, "max_output_tokens": req.max_output_tokens,
        "text": msgspec.to_builtins(req.text) if req.text is not None else {"format": {"type": "text"}},
        "reasoning": {"effort": reasoning.effort if reasoning else None,
                      "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None},
        "metadata": req.metadata or {}, "store": False, "previous_response_id": None, "background": False,
        "truncation": req.truncation or "disabled", "user": req.user,
    }
