"""Receivers that speak what observability backends speak, on loopback: OTLP/HTTP (protobuf, and the JSON
encoding broadcast destinations use), OTLP/gRPC (grpcio's server with opentelemetry-proto's service), a
generic webhook and Langfuse's ingestion API. Each decodes what it gets into plain spans a test can read."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.loopback import LoopbackServer


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    events: list[str] = field(default_factory=list)
    service: str = ""


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, which) if which else None


def spans_of(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    spans = []
    for resource in request.resource_spans:
        service = next((_value(a.value) for a in resource.resource.attributes if a.key == "service.name"), "")
        for scope in resource.scope_spans:
            for s in scope.spans:
                spans.append(Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind,
                                  {a.key: _value(a.value) for a in s.attributes}, s.status.code,
                                  [e.name for e in s.events], service))
    return spans


def from_json(body: dict[str, Any]) -> trace_service_pb2.ExportTraceServiceRequest:
    """OTLP/JSON: ids are hex strings (not base64, as protobuf's JSON mapping would have them)."""
    for resource in body.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for name in ("traceId", "spanId", "parentSpanId"):
                    span[name] = base64.b64encode(bytes.fromhex(span.get(name) or "")).decode()
    return ParseDict(body, trace_service_pb2.ExportTraceServiceRequest())


class Receiver(LoopbackServer):
    """OTLP/HTTP at ``/v1/traces``; a webhook at ``/hook``; Langfuse at ``/api/public/ingestion``. ``mode``
    ``down`` answers 503; ``hold`` keeps every request waiting until ``release`` (a slow destination);
    ``fail_first`` answers 503 that many times, then takes what comes (retries)."""

    def __init__(self, langfuse_keys: tuple[str, str] = ("pk-lf-test", "sk-lf-test")) -> None:
        super().__init__()
        self.spans: list[Span] = []
        self.bodies: list[tuple[str, dict[str, str], bytes]] = []  # path, headers, raw body
        self.langfuse: list[dict[str, Any]] = []
        self.langfuse_keys = langfuse_keys
        self.mode = "ok"
        self.fail_first = 0
        self.refused = 0
        self.held = 0
        self._release: asyncio.Event | None = None

    def routes(self, app: web.Application) -> None:
        self._release = asyncio.Event()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/hook", self._traces)
        app.router.add_post("/api/public/ingestion", self._ingestion)

    def release(self) -> None:
        assert self._loop is not None and self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    async def _gate(self) -> web.Response | None:
        if self.mode == "down":
            self.refused += 1
            return web.Response(status=503)
        if self.mode == "hold":
            self.held += 1
            assert self._release is not None
            await self._release.wait()
        if self.fail_first > 0:
            self.fail_first -= 1
            self.refused += 1
            return web.Response(status=503)
        return None

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        refused = await self._gate()
        if refused is not None:
            return refused
        self.bodies.append((request.path, dict(request.headers), body))
        if request.content_type == "application/json":
            decoded = from_json(json.loads(body))
        else:
            decoded = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        self.spans.extend(spans_of(decoded))
        return web.Response(body=trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def _ingestion(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(":".join(self.langfuse_keys).encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Invalid credentials"}, status=401)
        body = await request.json()
        refused = await self._gate()
        if refused is not None:
            return refused
        batch = body["batch"]
        for event in batch:  # Langfuse's ingestion contract: each event has an id, a timestamp, a type and a body
            assert {"id", "timestamp", "type", "body"} <= set(event) and event["type"] in (
                "trace-create", "generation-create")
        self.langfuse.extend(batch)
        return web.json_response({"successes": [{"id": e["id"], "status": 201} for e in batch], "errors": []},
                                 status=207)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, check: Any, what: str, seconds: float = 20) -> Any:
        return eventually(check, what, seconds)


def eventually(check: Any, what: str, seconds: float = 20) -> Any:
    """Poll until ``check()`` is truthy (exports are batched in the background); fail saying what never came."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never got {what}")


class GrpcReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver on a free loopback port."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
               ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.spans.extend(spans_of(request))
        return trace_service_pb2.ExportTraceServiceResponse()

    def start(self) -> GrpcReceiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(None)
