"""Headers one request adds to each of its upstream calls (``X-Request-Id``, W3C ``traceparent``): set by
the exchange core before an attempt opens (observe/ids.py builds and validates them), read by the HTTP
adapters after their fixed header block. A context variable, so an attempt's task sees its own request's."""

from __future__ import annotations

from contextvars import ContextVar

UPSTREAM_HEADERS: ContextVar[bytes] = ContextVar("routeway_upstream_headers", default=b"")
