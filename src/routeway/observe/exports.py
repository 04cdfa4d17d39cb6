"""What each kind of destination receives for a batch of finished exchanges: OTLP/HTTP JSON traces (an
OpenTelemetry collector, and the generic webhook, as OpenRouter's broadcast sends both) with the GenAI
semantic conventions, or Langfuse's ingestion events (``trace-create`` + ``generation-create``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from routeway.observe.summary import Finished


@dataclass(slots=True)
class Export:
    """One exchange as destinations see it; ``prompt``/``completion`` are None unless the account's
    destination may carry content (``privacy_mode`` off) — they are cut per destination, not here."""

    finished: Finished
    trace_id: str  # 32 hex: the client's trace (traceparent) or routeway's own, else a new one
    parent_span_id: str | None  # the client's span, when it sent a traceparent
    prompt: str | None  # the messages as JSON text, cut at CONTENT_LIMIT characters
    completion: str  # cut at CONTENT_LIMIT characters

    @property
    def size(self) -> int:
        """Roughly what holding it costs, for the destinations' queue budget."""
        return len(self.prompt or "") + len(self.completion) + 1024


CONTENT_LIMIT = 64 * 1024  # characters of a prompt or a completion a destination receives


def _messages(prompt: str | None) -> Any:
    """The prompt as JSON for Langfuse when it was kept whole, else the text as cut."""
    try:
        return msgspec.json.decode(prompt or "null")
    except msgspec.DecodeError:
        return prompt


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in values.items() if v is not None]


def gen_ai_attributes(f: Finished) -> dict[str, Any]:
    return {"gen_ai.operation.name": "chat", "gen_ai.request.model": f.requested_model,
            "gen_ai.response.model": f.model, "gen_ai.response.id": f.generation_id,
            "gen_ai.provider.name": f.provider, "gen_ai.usage.input_tokens": f.tokens_prompt,
            "gen_ai.usage.output_tokens": f.tokens_completion,
            "gen_ai.response.finish_reasons": [f.finish_reason] if f.finish_reason else None,
            "routeway.cost_usd": f.cost_nano / 1e9, "routeway.cost_nano_usd": f.cost_nano,
            "routeway.generation_id": f.generation_id, "routeway.request_id": f.request_id,
            "routeway.key_hash": f.key_hash, "routeway.api": f.api, "http.response.status_code": f.status,
            "session.id": f.session_id, "user.id": f.user,
            "routeway.cache_hit": True if f.cache_hit else None,
            "routeway.cache_saved_nano_usd": f.cache_saved_nano if f.cache_hit else None}


def _span_id() -> str:
    return os.urandom(8).hex()


def otlp_json(exports: list[Export], content: bool) -> dict[str, Any]:
    """An OTLP ``ExportTraceServiceRequest`` in its JSON encoding: one server span per exchange, and a
    client span per upstream attempt under it."""
    spans: list[dict[str, Any]] = []
    for e in exports:
        f = e.finished
        start = f.started_ms * 1_000_000
        end = start + f.latency_ms * 1_000_000
        root = _span_id()
        attributes = gen_ai_attributes(f)
        if f.ttft_ms is not None:
            attributes["gen_ai.server.time_to_first_token"] = f.ttft_ms / 1000
        if content:
            attributes["gen_ai.input.messages"] = e.prompt or ""
            attributes["gen_ai.output.messages"] = _json([{"role": "assistant", "content": e.completion}])
        spans.append({"traceId": e.trace_id, "spanId": root, "parentSpanId": e.parent_span_id or "",
                      "name": f"chat {f.requested_model}", "kind": 2, "startTimeUnixNano": str(start),
                      "endTimeUnixNano": str(end), "attributes": _attributes(attributes),
                      "status": {"code": 1 if f.status == 200 else 2}})
        began = start
        for index, attempt in enumerate(f.attempts):
            took = int(attempt.get("ms") or 0) * 1_000_000
            failed = "error" in attempt
            spans.append({"traceId": e.trace_id, "spanId": _span_id(), "parentSpanId": root,
                          "name": f"chat {attempt.get('model')}", "kind": 3, "startTimeUnixNano": str(began),
                          "endTimeUnixNano": str(began + took if failed else end),
                          "attributes": _attributes({"gen_ai.provider.name": attempt.get("provider"),
                                                     "gen_ai.request.model": attempt.get("model"),
                                                     "http.response.status_code": attempt.get("status"),
                                                     "routeway.attempt": index, "routeway.fallback": index > 0,
                                                     "error.type": str(attempt.get("status")) if failed else None}),
                          "status": {"code": 2 if failed else 1}})
            began += took
    return {"resourceSpans": [{"resource": {"attributes": _attributes({"service.name": "routeway"})},
                               "scopeSpans": [{"scope": {"name": "routeway"}, "spans": spans}]}]}


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def langfuse_batch(exports: list[Export], content: bool) -> dict[str, Any]:
    """Langfuse's ``POST /api/public/ingestion`` body: a trace and its generation per exchange."""
    batch: list[dict[str, Any]] = []
    for e in exports:
        f = e.finished
        now = _iso(f.started_ms + f.latency_ms)
        metadata = {"request_id": f.request_id, "provider": f.provider, "status": f.status,
                    "key_hash": f.key_hash, "attempts": len(f.attempts), "finish_reason": f.finish_reason}
        trace: dict[str, Any] = {"id": e.trace_id, "name": f"chat {f.requested_model}", "timestamp": _iso(f.started_ms),
                                 "userId": f.user, "sessionId": f.session_id, "metadata": metadata}
        generation: dict[str, Any] = {
            "id": f.generation_id, "traceId": e.trace_id, "name": "chat", "startTime": _iso(f.started_ms),
            "endTime": now, "model": f.model, "metadata": metadata,
            "usageDetails": {"input": f.tokens_prompt or 0, "output": f.tokens_completion or 0},
            "costDetails": {"total": f.cost_nano / 1e9},
            "level": "DEFAULT" if f.status == 200 else "ERROR", "statusMessage": f.error}
        if f.ttft_ms is not None:
            generation["completionStartTime"] = _iso(f.started_ms + f.ttft_ms)
        if content:
            trace["input"] = generation["input"] = _messages(e.prompt)
            trace["output"] = generation["output"] = e.completion
        batch.append({"id": os.urandom(16).hex(), "timestamp": now, "type": "trace-create", "body": trace})
        batch.append({"id": os.urandom(16).hex(), "timestamp": now, "type": "generation-create", "body": generation})
    return {"batch": batch}
