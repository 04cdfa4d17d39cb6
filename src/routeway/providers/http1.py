"""A pooled HTTP/1.1 client for upstream calls: asyncio protocols and httptools' parser (llhttp).

Why not aiohttp's client: the gateway sends one kind of request (a POST of JSON bytes) and reads one
of two kinds of answer (a JSON body, or an SSE stream), and aiohttp's general request machinery was
about a fifth of the event loop's time per request (bench/NOTES.md, steps 3 and 9). Here a request is
one ``transport.write``; the answer's body is handed over as the parser produces it, and a reader waits
on a plain future (one timer per wait) only when nothing is buffered.

What it does: keep-alive connections pooled per origin (closed after ``IDLE_SECONDS`` unused, below the
5 s default of uvicorn-based engines so we rarely reuse a socket the server is closing; a reused socket
that closes before any answer byte is retried once on a new one), TLS with the system's certificates,
chunked, length-delimited and close-delimited bodies, gzip/deflate bodies (it asks for identity and
decodes these anyway), and timeouts for connecting, for the response head, between body reads, and in total.

Bounded: an answer's body is capped (``body_limit``, counted after decompression, so a gzip bomb stops
at the cap too; past it the read fails with ``BodyTooLarge`` and the socket is closed), and at most
``HIGH_WATER`` bytes wait in a response for its reader: above that the socket stops being read
(``transport.pause_reading``) until the reader takes them. So a client that reads slowly slows its own
upstream (the relay awaits the client's send) and never makes routeway hold more than a window of it.
What it leaves out: proxies, cookies (an upstream's cookies must never ride along on another user's
request), redirects, HTTP/2.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

IDLE_SECONDS = 4.0
HIGH_WATER = 256 * 1024  # body bytes a response holds for its reader before the socket is paused
BODY_LIMIT = 32 * 1024 * 1024  # an answer's body, unless the caller says otherwise


class ClientError(Exception):
    """The upstream connection failed; the message says how."""


class ConnectFailed(ClientError):
    pass


class Disconnected(ClientError):
    pass


class BodyTooLarge(ClientError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upstream answer is larger than {limit:,} bytes")
        self.limit = limit


class ReadTimeout(ClientError):
    def __init__(self, message: str, total: bool = False) -> None:
        super().__init__(message)
        self.total = total  # the call's total time ran out (not a wait between reads)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send: parsed once per provider, not per request."""

    host: str
    port: int
    tls: bool
    path: bytes
    host_header: bytes

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        default_port = parts.port is None or port == (443 if tls else 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(host, port, tls, path.encode("latin-1"),
                   (shown if default_port else f"{shown}:{port}").encode("latin-1"))


def header_block(headers: dict[str, str]) -> bytes:
    """Fixed request headers as wire bytes; refuses values that would split the request."""
    lines = []
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"header {name!r} has a character HTTP does not allow")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class Response:
    """One upstream answer: status and head now, body as it arrives."""

    __slots__ = ("status", "headers", "_conn", "_chunks", "_waiter", "_complete", "_error", "_inflate",
                 "_deadline", "_loop", "_idle", "_arrived", "_watchdog", "limit", "_received", "_buffered",
                 "_paused", "_window")

    def __init__(self, conn: _Connection, status: int, headers: dict[str, str], deadline: float,
                 limit: int) -> None:
        self.status = status
        self.headers = headers
        self._conn: _Connection | None = conn
        self._chunks: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._error: ClientError | None = None
        self._deadline = deadline
        self._loop = conn.loop
        self._idle: float | None = None  # the longest silence the current reader accepts
        self._arrived = conn.loop.time()  # when bytes last came in
        self._watchdog: asyncio.TimerHandle | None = None
        self.limit = limit  # body bytes this answer may have in all (the caller may lower it, e.g. for errors)
        self._received = 0  # body bytes so far, decompressed
        self._buffered = 0  # body bytes waiting for the reader
        self._paused = False  # the socket is not being read until the reader catches up
        self._window = HIGH_WATER  # buffered bytes that pause the socket
        encoding = headers.get("content-encoding", "").strip().lower()
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS) \
            if encoding in ("gzip", "deflate") else None

    # ---- fed by the connection ----
    def _feed(self, data: bytes) -> None:
        if self._complete:
            return  # bytes past the end of this answer belong to no one (the socket is being closed)
        room = self.limit - self._received
        if self._inflate is not None:
            try:  # never inflate more than the cap allows (plus one byte, to see it is over)
                data = self._inflate.decompress(data, max(room, 0) + 1)
            except zlib.error as exc:
                self._fail(ClientError(f"upstream sent a body that does not decompress: {exc}"))
                return
        if len(data) > room:
            self._fail(BodyTooLarge(self.limit))
            if self._conn is not None:
                self._conn.abort()  # the rest of this answer is not wanted, and the socket cannot be reused
            return
        self._received += len(data)
        self._buffered += len(data)
        self._chunks.append(data)
        self._arrived = self._loop.time()
        if self._buffered >= self._window and not self._paused and self._conn is not None:
            self._paused = self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: ClientError) -> None:
        if not self._complete and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---- read by the caller ----
    async def read_some(self, idle: float) -> bytes:
        """The body bytes that arrived since the last call, waiting up to ``idle`` seconds (and never past
        the call's total deadline) for some; ``b""`` once the body is complete."""
        while True:
            if self._chunks:
                chunks = self._chunks
                self._chunks = []
                self._buffered = 0
                if self._paused:
                    self._resume()
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            await self._wait(idle)

    async def read(self) -> bytes:
        """The whole body (bounded by the call's total deadline)."""
        self._window = self.limit + 1  # a whole answer is read in one piece: its bound is the cap
        if self._paused:
            self._resume()
        while not self._complete:
            if self._error is not None:
                raise self._error
            await self._wait(None)
        if self._error is not None:
            raise self._error
        chunks, self._chunks = self._chunks, []
        self.close()
        return b"".join(chunks)

    def _resume(self) -> None:
        self._paused = False
        self._arrived = self._loop.time()  # the upstream was not silent while paused: we were not reading
        if self._conn is not None:
            self._conn.resume()

    async def _wait(self, idle: float | None) -> None:
        if self._deadline <= self._loop.time():
            raise ReadTimeout("the call's total time ran out", total=True)
        self._idle = idle
        if self._watchdog is None:
            self._arm()
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    # One watchdog timer per answer, re-armed only when it fires, instead of a timer per wait: a stream
    # waits once per chunk, and creating and cancelling a timer each time was measurable (bench step 10).
    def _arm(self) -> None:
        due = self._deadline if self._idle is None else min(self._deadline, self._arrived + self._idle)
        self._watchdog = self._loop.call_at(due, self._check)

    def _check(self) -> None:
        self._watchdog = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nobody is waiting: the next wait arms it again
        now = self._loop.time()
        if now >= self._deadline:
            waiter.set_exception(ReadTimeout("the call's total time ran out", total=True))
        elif self._idle is not None and now - self._arrived >= self._idle:
            waiter.set_exception(ReadTimeout(f"no data for {self._idle:g} s"))
        else:
            self._arm()

    def close(self) -> None:
        """Done with the answer: a finished keep-alive connection goes back to its pool; anything else is
        closed now (a stream the client left is cut, never drained)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.done_with(self, reusable=self._complete and self._error is None)


class _Connection(asyncio.Protocol):
    """One socket; one request at a time."""

    def __init__(self, pool: Pool, key: tuple[str, int, bool], loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.key = key
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.received = False  # any byte of the current answer
        self.head: asyncio.Future[Response] | None = None
        self.response: Response | None = None
        self.deadline = 0.0
        self.body_limit = 0
        self.paused = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._close_delimited = True
        self._keep = True  # the server has not asked to close after this answer

    # ---- asyncio.Protocol ----
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self.head is None and self.response is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(ClientError(f"upstream sent malformed HTTP: {exc}"))
        except httptools.HttpParserUpgrade:
            self._broken(ClientError("upstream switched protocols"))

    def eof_received(self) -> bool | None:
        return False  # close the transport; connection_lost says what it meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.response is not None and self._close_delimited and exc is None and self.head is None:
            self.response._finish()  # a body without length or chunking ends where the connection does
            return
        reason = f"upstream closed the connection{f': {exc}' if exc else ''}"
        self._broken(Disconnected(reason))

    # ---- httptools callbacks ----
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers: dict[str, str] = {}
        for name, value in self._headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self._headers = []
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer; the real one follows
        if self.head is None:  # a second answer to one request: nothing on this socket can be trusted now
            self._broken(ClientError("upstream sent an answer nobody asked for"))
            return
        self._close_delimited = ("content-length" not in headers
                                 and "chunked" not in headers.get("transfer-encoding", ""))
        self.response = Response(self, status, headers, self.deadline, self.body_limit)
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_result(self.response)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self.response is not None:
            if self.parser.get_status_code() < 200:
                return
            self.response._finish()
            if not self.parser.should_keep_alive():
                self._keep = False

    # ---- the pool's side ----
    def send(self, data: bytes, deadline: float, body_limit: int) -> asyncio.Future[Response]:
        self.head = self.loop.create_future()
        self.response = None
        self.received = False
        self.deadline = deadline
        self.body_limit = body_limit
        self._keep = True
        assert self.transport is not None
        self.transport.write(data)
        return self.head

    def pause(self) -> bool:
        if self.closed or self.transport is None:
            return False
        self.transport.pause_reading()
        self.paused = True
        return True

    def resume(self) -> None:
        if self.paused and not self.closed and self.transport is not None:
            self.transport.resume_reading()
        self.paused = False

    def done_with(self, response: Response, reusable: bool) -> None:
        if response is not self.response:
            return
        self.response = None
        if reusable and self._keep and not self.closed and self.head is None:
            self.resume()  # the answer's last bytes may have paused it
            self.pool.release(self)
        else:
            self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()

    def _broken(self, error: ClientError) -> None:
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_exception(error)
        if self.response is not None:
            self.response._fail(error)
        self.abort()


class Pool:
    """Keep-alive connections per origin, for the life of the server."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int, bool], deque[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._tls: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def post(self, target: Target, headers: bytes, body: bytes, *, connect_timeout: float,
                   head_timeout: float, total_timeout: float, body_limit: int = BODY_LIMIT) -> Response:
        """Send ``body`` and wait for the answer's status and headers; its body may have ``body_limit``
        bytes at most."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + total_timeout
        # identity: without an Accept-Encoding a server may pick any coding (RFC 9110 12.5.3), and a
        # compressed event stream can be held back by the compressor
        request = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\naccept-encoding: identity\r\n%s\r\n%s" % (
            target.path, target.host_header, len(body), headers, body)
        conn = self._reuse(target)
        if conn is not None:
            try:
                return await self._exchange(conn, request, deadline, head_timeout, body_limit, loop)
            except Disconnected:
                if conn.received:
                    raise
                # the server closed an idle socket as we reused it: nothing was answered, try a new one
        conn = await self._connect(target, connect_timeout, loop)
        return await self._exchange(conn, request, deadline, head_timeout, body_limit, loop)

    async def _exchange(self, conn: _Connection, request: bytes, deadline: float, head_timeout: float,
                        body_limit: int, loop: asyncio.AbstractEventLoop) -> Response:
        head = conn.send(request, deadline, body_limit)
        limit = min(loop.time() + head_timeout, deadline)
        timer = loop.call_at(limit, _expire_head, head)
        try:
            return await head
        except BaseException:
            conn.abort()
            raise
        finally:
            timer.cancel()

    def _reuse(self, target: Target) -> _Connection | None:
        idle = self._idle.get((target.host, target.port, target.tls))
        if not idle:
            return None
        fresh_after = time.monotonic() - IDLE_SECONDS
        while idle:
            conn = idle.pop()  # the most recently used: the likeliest to be alive
            if not conn.closed and conn.idle_since > fresh_after:
                return conn
            conn.abort()
        return None

    async def _connect(self, target: Target, timeout: float, loop: asyncio.AbstractEventLoop) -> _Connection:
        key = (target.host, target.port, target.tls)
        conn = _Connection(self, key, loop)
        tls: Any = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: conn, target.host, target.port, ssl=tls,
                                             server_hostname=target.host if tls else None)
        except TimeoutError:
            raise ConnectFailed(f"connecting took longer than {timeout:g} s") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        self._all.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, deque()).append(conn)
        if self._sweeper is None:
            self._sweeper = conn.loop.call_later(IDLE_SECONDS, self._sweep, conn.loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close sockets idle for longer than ``IDLE_SECONDS``: after a burst, the pool shrinks back
        instead of holding every socket the burst opened."""
        self._sweeper = None
        stale_before = time.monotonic() - IDLE_SECONDS
        for key, idle in list(self._idle.items()):
            while idle and (idle[0].closed or idle[0].idle_since <= stale_before):  # oldest first
                idle.popleft().abort()
            if not idle:
                del self._idle[key]
        if self._idle:
            self._sweeper = loop.call_later(IDLE_SECONDS, self._sweep, loop)

    def forget(self, conn: _Connection) -> None:
        self._all.discard(conn)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._all):
            conn.abort()
        self._all.clear()
        self._idle.clear()


def _expire_head(head: asyncio.Future[Response]) -> None:
    if not head.done():
        head.set_exception(ReadTimeout("no response head within the time limit"))
