"""uvicorn's httptools protocol with an end to every wait on a client (``[server]`` settings).

Stock uvicorn holds a connection that never finishes its headers, or its body, forever, buffers a
header of any size, and lets a connection that sends nothing stay open (its keep-alive timer starts
only after a first answer). This subclass adds, per connection:

- a cap on the request line and headers together (``max_header_bytes``): a 431 in the error envelope;
  counted while they arrive, so a huge header is refused after about ``max_header_bytes`` of it;
- a header deadline (``header_timeout_seconds``) from the connection's opening, or from the first byte
  of a request on a kept-alive connection, to its last header: a 408 (silence when nothing came);
- a body deadline (``body_timeout_seconds``) from the last header to the body's last byte: a 408;
- a cap on open connections (``max_connections``): a request on one more is answered 503 at once;
- a send deadline (``send_timeout_seconds``): a client that leaves our writes unread that long (the
  transport's buffer stays above its high-water mark) is cut off, which also ends its request's work
  and upstream call (the app sees the disconnect).

The idle keep-alive timeout is uvicorn's own ``timeout_keep_alive``. Timers are armed only when a
request's head or body spans more than one read, so a request that arrives whole costs none.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from routeway.config import ConnectionSettings
from routeway.errors import APIError

log = logging.getLogger("routeway.connections")

IDLE, HEAD, BODY = 0, 1, 2  # where the current request stands
FILES_RESERVED = 256  # open files kept for the store, logs and upstream connections beyond one per client
LINGER_SECONDS = 2.0  # after a refusal, how long the client's remaining bytes are read and dropped
_encoder = msgspec.json.Encoder()


class ConnectionStats:
    """What the limits did, for /metrics (read at scrape time): open connections and refusals by reason."""

    def __init__(self) -> None:
        self.connections: set[Any] = set()  # uvicorn's own set of open connections, once one is made
        self.refused: Counter[str] = Counter()
        self.warned_over_cap = float("-inf")  # when the connection cap was last logged

    def collect(self) -> Iterator[Metric]:
        open_now = GaugeMetricFamily("routeway_client_connections", "Open client connections")
        open_now.add_metric([], len(self.connections))
        refused = CounterMetricFamily("routeway_client_refusals", "Client connections refused or cut off by a limit",
                                      labels=["reason"])
        for reason in REASONS:
            refused.add_metric([reason], self.refused[reason])
        yield from (open_now, refused)


REASONS = ("header_too_large", "header_timeout", "body_timeout", "send_timeout", "too_many_connections")


# The parser's callbacks run several times per request: the base class's methods are called directly
# (``_base.on_body(self, body)``), a little cheaper than ``super()`` on the hot path (bench step 27).
_base = HttpToolsProtocol


class GuardedProtocol(HttpToolsProtocol):
    limits: ConnectionSettings = ConnectionSettings()  # set per server by ``protocol_class``
    stats: ConnectionStats = ConnectionStats()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = IDLE
        self._head_bytes = 0  # bytes of the current request's head received in earlier reads
        self._read_size = 0  # bytes in the read being parsed now
        self._deadline: asyncio.TimerHandle | None = None
        self._stalled: asyncio.TimerHandle | None = None  # armed while the client is not reading our writes
        self._refused = False

    # ---- connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.stats.connections = self.connections
        # A connection that never sends a byte is closed too (uvicorn arms keep-alive only after an answer).
        self._arm(self.limits.header_timeout_seconds, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._stalled is not None:
            self._stalled.cancel()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.limits.send_timeout_seconds, self._send_timed_out)

    def resume_writing(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        super().resume_writing()

    def _send_timed_out(self) -> None:
        self._stalled = None
        self.stats.refused["send_timeout"] += 1
        # close() would wait for the unread buffer to drain, which is what never happens
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the refusal is written and the connection closing: nothing more is parsed
        self._read_size = len(data)
        _base.data_received(self, data)
        if self._phase == IDLE or self._refused or self.transport.is_closing():
            return  # the usual case: the whole request came in this read, and nothing waits for more
        if self._phase == HEAD:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse_oversized_head()
            elif self._deadline is None:
                self._arm(self.limits.header_timeout_seconds, self._head_timed_out)
        elif self._phase == BODY and self._deadline is None:
            self._arm(self.limits.body_timeout_seconds, self._body_timed_out)

    # ---- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._refused:
            return
        self._phase, self._head_bytes = HEAD, 0
        _base.on_message_begin(self)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        if self._deadline is not None:
            self._disarm()
        self._phase = BODY
        # data_received counts whole reads; a head that ends within this one is measured exactly, but
        # only when the reads could hold more than the cap (so a usual request skips the sum).
        if self._head_bytes + self._read_size > self.limits.max_header_bytes:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self.limits.max_header_bytes:
                self._refuse_oversized_head()
                return
        if len(self.connections) > self.limits.max_connections:
            self._warn_over_cap()
            self.stats.refused["too_many_connections"] += 1
            self._refuse(APIError(
                503, f"The server has too many open connections (the cap is {self.limits.max_connections:,}). "
                     "Retry in a moment.", error_type="too_many_connections", headers={"retry-after": "1"}))
            return
        _base.on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            _base.on_body(self, body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        if self._deadline is not None:
            self._disarm()
        self._phase = IDLE
        _base.on_message_complete(self)

    def _warn_over_cap(self) -> None:
        """Once a minute at most: a flood must not also flood the log."""
        now = self.loop.time()
        if now - self.stats.warned_over_cap >= 60:
            self.stats.warned_over_cap = now
            log.warning("refusing requests with 503: %d connections are open and max_connections is %d",
                        len(self.connections), self.limits.max_connections)

    # ---- deadlines ----------------------------------------------------------------------------
    def _arm(self, seconds: float, expired: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        self.stats.refused["header_timeout"] += 1
        if self._phase != HEAD or answering:
            self.transport.close()  # nothing was asked (or an answer is on its way): no status to give
            return
        self._refuse(APIError(408, f"The request's headers did not arrive within "
                                   f"{self.limits.header_timeout_seconds:g} s.", error_type="timeout"))

    def _body_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.stats.refused["body_timeout"] += 1
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            self.transport.close()
            return
        # The app is waiting in receive(): it sees a disconnect and returns without answering.
        cycle.disconnected = True
        cycle.message_event.set()
        self._refuse(APIError(408, f"The request body did not arrive within {self.limits.body_timeout_seconds:g} s.",
                              error_type="timeout"))

    # ---- refusals -----------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP, in the error envelope instead of plain text."""
        self._refuse(APIError(400, f"{msg} The request could not be parsed as HTTP/1.1."))

    def _refuse_oversized_head(self) -> None:
        self.stats.refused["header_too_large"] += 1
        self._refuse(APIError(431, f"The request line and headers exceed {self.limits.max_header_bytes:,} bytes.",
                              error_type="payload_too_large"))

    def _refuse(self, error: APIError) -> None:
        """Answer in the error envelope, close the connection, and stop parsing it."""
        self._refused = True
        self._disarm()
        if self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete:
            self.transport.close()  # a pipelined request's refusal cannot cut into the answer being written
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # its route is running (the head was fine, the body is not): it sees a disconnect, and what it
            # still sends is dropped instead of written after the refusal (a traceback in the log)
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        body = _encoder.encode(error.body())
        head = [STATUS_LINE[error.status], b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
        head += [b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in error.headers.items()]
        self.transport.write(b"".join(head) + b"\r\n" + body)
        # Closing with the client's bytes unread would reset the connection, and a reset can destroy the
        # answer before the client reads it: stop writing, read and drop what still comes for a moment
        # (as nginx's lingering close does), then close.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.flow.resume_reading()
            self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


def protocol_class(limits: ConnectionSettings, stats: ConnectionStats) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (``http=``), bound to this server's limits and counters."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits, "stats": stats})


def fit_open_file_limit(limits: ConnectionSettings) -> ConnectionSettings:
    """Each client connection may hold an upstream one: raise this process's open-file limit to fit
    ``max_connections`` (the soft limit is often 1,024 while the hard one allows more), or lower the cap
    to what the hard limit allows, so a flood meets the clear 503 rather than failing ``accept()``."""
    needed = 2 * limits.max_connections + FILES_RESERVED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        fitted = max(1, (soft - FILES_RESERVED) // 2)
        log.warning("max_connections lowered from %d to %d: the open-file limit is %d", limits.max_connections,
                    fitted, soft)
        return replace(limits, max_connections=fitted)
    return limits
