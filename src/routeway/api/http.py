"""A small ASGI layer: request reading, JSON responses, routing.

Plain ASGI instead of a framework's middleware stack keeps the chat hot path short (design.md:
no BaseHTTPMiddleware). Handlers are ``async def handler(request) -> Response | None``; a handler that
streams writes to ``request.send`` itself and returns None.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

import msgspec

from routeway.errors import APIError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_encoder = msgspec.json.Encoder()
JSON_HEADERS = [(b"content-type", b"application/json")]
_SMALL_INT = re.compile(r"[0-9]{1,9}")


class ClientDisconnected(Exception):
    """The client went away while we were still reading its request."""


class Request:
    __slots__ = ("scope", "receive", "send", "path_params", "headers", "_query", "state")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.path_params: dict[str, str] = {}
        # decoded at once: every API request reads them several times, and a property costs a call each time
        self.headers: dict[str, str] = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self._query: dict[str, str] | None = None
        self.state: dict[str, Any] = {}

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))
        return self._query

    def query_int(self, name: str, default: int) -> int:
        """A non-negative integer query parameter. ASCII digits only (``str.isdigit`` accepts "²", which
        ``int`` refuses) and at most 9 of them (a 5,000-digit number would hit Python's int conversion limit)."""
        value = self.query.get(name)
        if value is None:
            return default
        if not _SMALL_INT.fullmatch(value):
            raise APIError(400, f"Invalid request: query parameter `{name}` must be a non-negative integer"
                           " below 1,000,000,000", metadata={"param": name})
        return int(value)

    async def body(self, limit: int) -> bytes:
        declared = self.headers.get("content-length")
        if declared is not None and _SMALL_INT.fullmatch(declared) and int(declared) > limit:
            raise APIError(413, f"Request body is {int(declared):,} bytes; the limit is {limit:,} bytes.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise APIError(413, f"Request body exceeds the limit of {limit:,} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)



class Response:
    __slots__ = ("status", "body", "headers", "length")

    def __init__(self, body: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None,
                 length: int | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else JSON_HEADERS
        self.length = len(body) if length is None else length  # a HEAD answer gives the GET body's length

    async def __call__(self, send: Send) -> None:
        # Content-Length instead of chunked framing: the server then writes the body as it is, and
        # clients read it in one piece.
        headers = [*self.headers, (b"content-length", b"%d" % self.length)]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(payload: Any, status: int = 200, extra_headers: dict[str, str] | None = None) -> Response:
    headers = JSON_HEADERS
    if extra_headers:
        headers = JSON_HEADERS + [(k.lower().encode(), v.encode()) for k, v in extra_headers.items()]
    return Response(_encoder.encode(payload), status, headers)


def error_response(error: APIError) -> Response:
    return json_response(error.body(), error.status, error.headers)


Handler = Callable[[Request], Awaitable[Response | None]]
# The API routes Handlers; the dashboard routes its own page handlers (web/dashboard.py ``Page``).
H = TypeVar("H")


class Router(Generic[H]):
    """Exact paths in a dict; paths with ``{name}`` segments as compiled patterns."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, H]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, H]]] = []
        self.table: list[tuple[str, str]] = []  # (method, path) in registration order: what the OpenAPI document covers

    def add(self, method: str, path: str, handler: H) -> None:
        self.table.append((method, path))
        if "{" not in path:
            self._exact.setdefault(path, {})[method] = handler
            return
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
        for pattern, methods in self._patterns:
            if pattern.pattern == regex.pattern:
                methods[method] = handler
                return
        self._patterns.append((regex, {method: handler}))

    def resolve(self, method: str, path: str) -> tuple[H, dict[str, str]]:
        methods = self._exact.get(path)
        params: dict[str, str] = {}
        if methods is None:
            for pattern, candidate in self._patterns:
                match = pattern.match(path)
                if match:
                    methods, params = candidate, match.groupdict()
                    break
        if methods is None:
            raise APIError(404, f"No route for {method} {path}.", error_type="not_found")
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            raise APIError(405, f"{method} is not allowed on {path}; use {allowed}.", headers={"Allow": allowed})
        return handler, params
