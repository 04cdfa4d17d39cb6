"""The adapter contract: open one upstream call; the call yields either one JSON body or SSE events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from routeway.catalog import Endpoint

RAW_LIMIT = 2000  # characters of an upstream's own words kept in ``raw`` (and a message taken from them)
RAW_SCAN = 16384  # characters of an error body ever looked at: bounds an error path's work (redaction ≤ ~5 ms)


class UpstreamError(Exception):
    """An upstream failed before answering. ``status`` is what the client gets (OpenRouter's mapping).

    ``message``, ``raw`` and ``retry_after`` may hold the upstream's own words: an adapter lets none leave
    it without ``redacted`` (see providers/redact.py)."""

    def __init__(self, status: int, message: str, *, upstream_status: int | None = None,
                 retry_after: str | None = None, raw: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.raw = raw
        self.retryable = retryable

    def redacted(self, redact: Callable[[str], str]) -> UpstreamError:
        """This error with every secret taken out of the upstream's words, cut to ``RAW_LIMIT`` only
        after redaction so no part of a secret survives the cut. Idempotent."""
        self.message = redact(self.message[:RAW_SCAN])[:RAW_LIMIT]
        self.args = (self.message,)
        if self.raw is not None:
            self.raw = redact(self.raw[:RAW_SCAN])[:RAW_LIMIT]
        if self.retry_after is not None:
            self.retry_after = redact(self.retry_after[:RAW_LIMIT])
        return self


class UpstreamCall(Protocol):
    upstream_status: int

    async def json(self) -> dict[str, Any]: ...

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """Parsed stream events in arrival order; ends at the upstream's end of stream."""

    def close(self) -> None:
        """Close the upstream connection now (never drain it)."""


class Adapter(Protocol):
    async def open(self, endpoint: Endpoint, body: dict[str, Any], stream: bool,
                   client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
        """Start the call. ``client_headers`` are the client's request headers: an adapter forwards those
        its upstream's protocol defines (the anthropic adapter: ``anthropic-version``, ``anthropic-beta``)."""

    async def start(self) -> None:
        """Run with the server's start-up (the local adapter starts its worker process here)."""

    async def stop(self) -> None:
        """Run at shutdown (the local adapter ends its worker process here)."""
