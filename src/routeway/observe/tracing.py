"""OpenTelemetry traces of exchanges, with the GenAI semantic conventions: one server span per request
(``chat <model>``) and one client span per upstream attempt under it, so a fallback shows as its failed
attempts beside the answering one. Exported in batches from the SDK's own thread over OTLP, HTTP/protobuf
or gRPC as ``OTEL_EXPORTER_OTLP_*`` say (endpoint, headers, timeout, compression, protocol), sampled as
``OTEL_TRACES_SAMPLER`` says.

This module is imported only when traces are on (services.py): with them off routeway loads no
OpenTelemetry code and makes no span object; the exchange core checks one attribute."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from routeway.config import ConfigError, TelemetrySettings
from routeway.errors import APIError
from routeway.observe.ids import REQUEST_ID, traceparent, tracestate, upstream_headers
from routeway.observe.summary import CacheHit, completion_text
from routeway.providers.propagate import UPSTREAM_HEADERS

if TYPE_CHECKING:
    from routeway.exchange.core import Exchange
    from routeway.exchange.events import Outcome
    from routeway.routing.plan import Attempt

PROTOCOLS = ("http/protobuf", "grpc")
CONTENT_LIMIT = 64 * 1024  # characters of prompt or completion kept in a span attribute
_encoder = msgspec.json.Encoder()


def exporter(env: Mapping[str, str]) -> SpanExporter:
    """The OTLP exporter the standard variables ask for; it reads its endpoint, headers, timeout,
    compression and certificate from them itself."""
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or PROTOCOLS[0]
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
        return HttpExporter()
    raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} is not supported; use one of {', '.join(PROTOCOLS)}")


class Tracing:
    """The tracer provider and its batch exporter; ``begin`` makes one exchange's trace."""

    def __init__(self, settings: TelemetrySettings, env: Mapping[str, str]) -> None:
        from routeway import __version__

        self.settings = settings
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "routeway"}
        self.provider = TracerProvider(resource=Resource.create({**attributes, "service.version": __version__}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter(env)))
        self.tracer = self.provider.get_tracer("routeway", __version__)
        self.propagator = TraceContextTextMapPropagator()

    def begin(self, ex: Exchange) -> ExchangeTrace:
        return ExchangeTrace(self, ex)

    def exchange_done(self, ex: Exchange, outcome: Outcome | None, failure: APIError | None) -> None:
        if ex.trace is not None:
            ex.trace.finish(ex, outcome, failure)

    def cache_hit(self, hit: CacheHit) -> None:
        """A hit's server span: no attempt under it, cost 0, ``routeway.cache_hit``; its ids go on ``hit``."""
        f = hit.finished
        parent = traceparent(hit.headers.get("traceparent"))
        context = None
        if parent is not None:
            carrier = {"traceparent": parent}
            state = tracestate(hit.headers.get("tracestate"))
            if state is not None:
                carrier["tracestate"] = state
            context = self.propagator.extract(carrier)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": f.requested_model,
            "gen_ai.response.model": f.model, "gen_ai.response.id": f.generation_id,
            "gen_ai.provider.name": f.provider or "", "routeway.generation_id": f.generation_id,
            "routeway.request_id": f.request_id, "routeway.account_id": f.account_id,
            "gen_ai.request.stream": f.stream, "routeway.api": f.api, "routeway.attempts": 0,
            "routeway.cache_hit": True, "routeway.cache_source_id": hit.source_id,
            "routeway.cache_saved_nano_usd": f.cache_saved_nano, "routeway.cost_nano_usd": 0, "routeway.cost_usd": 0.0,
            "gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 0, "http.response.status_code": 200}
        if f.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = [f.finish_reason]
        if f.session_id:
            attributes["session.id"] = f.session_id
        if f.user:
            attributes["user.id"] = f.user
        span = self.tracer.start_span(f"chat {f.requested_model}".strip(), context=context, kind=SpanKind.SERVER,
                                      attributes=attributes)
        span_context = span.get_span_context()
        settings = self.settings
        if span.is_recording() and settings.capture_content and random.random() < settings.content_sample_rate:
            span.set_attributes({
                "gen_ai.input.messages": _encoder.encode(hit.messages).decode()[:CONTENT_LIMIT],
                "gen_ai.output.messages": _encoder.encode(
                    [{"role": "assistant", "content": hit.completion[:CONTENT_LIMIT]}]).decode()})
        if span.is_recording():
            hit.trace_id, hit.span_id = f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"
        span.end()

    def shutdown(self) -> None:
        """Export what is still queued (the SDK's own bounded wait) and stop the exporter thread."""
        self.provider.shutdown()


def _wall_ns(monotonic: float) -> int:
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


class ExchangeTrace:
    """One request's spans: the server span, and the attempt span open now (None between attempts)."""

    __slots__ = ("tracing", "span", "attempt_span", "attempt_entry", "request_id", "content")

    def __init__(self, tracing: Tracing, ex: Exchange) -> None:
        self.tracing = tracing
        headers = ex.headers
        parent = traceparent(headers.get("traceparent"))
        context = None
        if parent is not None:
            carrier = {"traceparent": parent}
            state = tracestate(headers.get("tracestate"))
            if state is not None:
                carrier["tracestate"] = state
            context = tracing.propagator.extract(carrier)
        chat = ex.chat
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": chat.model or "", "routeway.generation_id": ex.id,
            "routeway.request_id": headers.get(REQUEST_ID, ""), "routeway.account_id": ex.key.account_id,
            "gen_ai.request.stream": chat.stream, "routeway.api": ex.api}
        for name, value in (("gen_ai.request.max_tokens", chat.output_limit), ("gen_ai.request.temperature",
                            chat.temperature), ("gen_ai.request.top_p", chat.top_p), ("gen_ai.request.top_k",
                            chat.top_k), ("gen_ai.request.seed", chat.seed)):
            if value is not None:
                attributes[name] = value
        if chat.session_id:
            attributes["session.id"] = chat.session_id
        if chat.user:
            attributes["user.id"] = chat.user
        self.span: Span = tracing.tracer.start_span(f"chat {chat.model or ''}".strip(), context=context,
                                                    kind=SpanKind.SERVER, attributes=attributes,
                                                    start_time=_wall_ns(ex.started))
        self.attempt_span: Span | None = None
        self.attempt_entry: dict[str, Any] | None = None
        self.request_id = headers.get(REQUEST_ID, "")
        settings = tracing.settings
        self.content = settings.capture_content and random.random() < settings.content_sample_rate
        if self.content and self.span.is_recording():
            self.span.set_attribute("gen_ai.input.messages", _encoder.encode(chat.messages or
                                    [{"role": "user", "content": chat.prompt or ""}]).decode()[:CONTENT_LIMIT])

    def attempt(self, attempt: Attempt, entry: dict[str, Any], index: int) -> None:
        """An attempt begins: the one before it (if any) failed. Its span's context goes upstream."""
        self._end_attempt()
        endpoint = attempt.endpoint
        span = self.tracing.tracer.start_span(
            f"chat {endpoint.upstream_model}", context=trace.set_span_in_context(self.span), kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": endpoint.upstream_model,
                        "gen_ai.provider.name": endpoint.tag, "gen_ai.system": endpoint.tag,
                        "routeway.model": attempt.model.id, "routeway.attempt": index,
                        "routeway.fallback": index > 0})
        self.attempt_span, self.attempt_entry = span, entry
        carrier: dict[str, str] = {}
        self.tracing.propagator.inject(carrier, context=trace.set_span_in_context(span))
        UPSTREAM_HEADERS.set(upstream_headers(self.request_id, carrier.get("traceparent"), carrier.get("tracestate")))

    def _end_attempt(self, ok: bool = False) -> None:
        span, entry = self.attempt_span, self.attempt_entry
        if span is None or entry is None:
            return
        status = entry.get("status")
        if span.is_recording():
            values: dict[str, Any] = {} if status is None else {"http.response.status_code": int(status)}
            if "error" in entry or not ok:
                values["error.type"] = str(status or "error")
                span.set_status(Status(StatusCode.ERROR, str(entry.get("error") or "")[:500]))
            span.set_attributes(values)
        span.end()
        self.attempt_span = self.attempt_entry = None

    def finish(self, ex: Exchange, outcome: Outcome | None, failure: APIError | None) -> None:
        span = self.span
        answered = failure is None and outcome is not None and outcome.failure is None and not ex.client_left
        if self.attempt_span is not None and ex.first_token is not None and self.attempt_span.is_recording():
            self.attempt_span.add_event("gen_ai.first_token", timestamp=_wall_ns(ex.first_token))
        self._end_attempt(ok=answered or (ex.first_token is not None and "error" not in (self.attempt_entry or {})))
        if not span.is_recording():  # sampled out: nothing to fill in
            span.end()
            return
        record = ex.record
        values: dict[str, Any] = {"gen_ai.response.id": ex.id, "routeway.attempts": len(ex.attempt_log)}
        if ex.attempt is not None:
            tag = ex.attempt.endpoint.tag
            values.update({"gen_ai.response.model": ex.attempt.model.id, "gen_ai.provider.name": tag,
                           "gen_ai.system": tag})
        if outcome is not None and outcome.usage is not None:
            values.update({"gen_ai.usage.input_tokens": outcome.usage.prompt,
                           "gen_ai.usage.output_tokens": outcome.usage.completion,
                           "routeway.usage_estimated": outcome.usage.estimated})
        if record is not None:
            values.update({"routeway.cost_nano_usd": record.total_cost_nano,
                           "routeway.cost_usd": record.total_cost_nano / 1e9})
            if record.finish_reason:
                values["gen_ai.response.finish_reasons"] = [record.finish_reason]
        if ex.first_token is not None:
            values["gen_ai.server.time_to_first_token"] = ex.first_token - ex.started
            span.add_event("gen_ai.first_token", timestamp=_wall_ns(ex.first_token))
        if ex.client_left:
            values["routeway.cancelled"] = True
        if self.content and not ex.client_left:
            values["gen_ai.output.messages"] = _encoder.encode(
                [{"role": "assistant", "content": completion_text(ex, outcome)[:CONTENT_LIMIT]}]).decode()
        problem = failure or (outcome.failure if outcome is not None else None)
        if problem is not None:
            values["error.type"] = str(problem.metadata.get("error_type") or problem.status)
            values["http.response.status_code"] = problem.status
            span.set_status(Status(StatusCode.ERROR, problem.message[:500]))
        else:
            values["http.response.status_code"] = 200
        span.set_attributes(values)
        span.end()
