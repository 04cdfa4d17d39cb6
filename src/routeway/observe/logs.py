"""Logs as JSON lines (``[log] format = "json"``): every log record becomes one JSON object, and each
exchange writes one line of its own (logger ``routeway.requests``, message ``request``) with its request
id, generation id, key hash, model, provider, status, cost and latency."""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import msgspec

from routeway.errors import APIError
from routeway.observe.summary import CacheHit, finished

if TYPE_CHECKING:
    from routeway.exchange.core import Exchange
    from routeway.exchange.events import Outcome

REQUESTS = "routeway.requests"
# set in a request's task once its exchange wrote its line, so the API layer writes no second one
EXCHANGE_LOGGED: ContextVar[bool] = ContextVar("routeway_exchange_logged", default=False)
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    converter = time.gmtime  # type: ignore[assignment]  # timestamps in UTC, as the trailing Z says

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                                "level": record.levelname.lower(), "logger": record.name,
                                "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()



def configure(log_format: str, level: str) -> None:
    """The process's logging: text as before, or JSON lines; request lines always at INFO in JSON mode,
    whatever ``--log-level`` says for the rest."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if log_format == "json":
        requests = logging.getLogger(REQUESTS)
        requests.setLevel(logging.INFO)
        requests.propagate = False
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(JsonFormatter())
        requests.handlers = [out]


class RequestLog:
    """The watcher that writes one JSON line per exchange."""

    def __init__(self) -> None:
        self.log = logging.getLogger(REQUESTS)

    def exchange_done(self, ex: Exchange, outcome: Outcome | None, failure: APIError | None) -> None:
        fields = finished(ex, outcome, failure).log_fields()
        if ex.trace is not None:
            context = ex.trace.span.get_span_context()
            fields["trace_id"] = f"{context.trace_id:032x}"
        self.log.info("request", extra={"fields": fields})
        EXCHANGE_LOGGED.set(True)

    def cache_hit(self, hit: CacheHit) -> None:
        """A hit's line has an exchange's fields (cost 0, ``cache_hit``), not the API layer's short one."""
        fields = hit.finished.log_fields()
        if hit.trace_id is not None:
            fields["trace_id"] = hit.trace_id
        self.log.info("request", extra={"fields": fields})
        EXCHANGE_LOGGED.set(True)

    def api_request(self, method: str, path: str, request_id: bytes, status: int, began: float) -> None:
        """The line of an API request that ran no exchange (refused before one, or not an inference)."""
        if EXCHANGE_LOGGED.get():
            return
        self.log.info("request", extra={"fields": {
            "request_id": request_id.decode(), "method": method, "path": path, "status": status,
            "latency_ms": int((time.monotonic() - began) * 1000)}})
