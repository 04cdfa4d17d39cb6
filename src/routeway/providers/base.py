"""The adapter contract: open one upstream call; the call yields either one JSON body or SSE events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from routeway.catalog import Endpoint


class UpstreamError(Exception):
    """An upstream failed before answering. ``status`` is what the client gets (OpenRouter's mapping)."""

    def __init__(self, status: int, message: str, *, upstream_status: int | None = None,
                 retry_after: str | None = None, raw: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.raw = raw
        self.retryable = retryable


class UpstreamCall(Protocol):
    upstream_status: int

    async def json(self) -> dict[str, Any]: ...

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """Parsed stream events in arrival order; ends at the upstream's end of stream."""

    def close(self) -> None:
        """Close the upstream connection now (never drain it)."""


class Adapter(Protocol):
    async def open(self, endpoint: Endpoint, body: dict[str, Any], stream: bool) -> UpstreamCall: ...
