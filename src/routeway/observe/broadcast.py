"""Per-account exports of finished exchanges, like OpenRouter's broadcast: each account's destinations
(an OTLP collector, a generic webhook, Langfuse) get its generations in batches, sent by one background
task with retries and backoff. A request only appends to an in-memory queue (bounded: when a destination
is down long enough to fill it, its oldest entries are dropped and counted), so a destination that is
down, slow or failing never delays or fails an answer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from routeway.errors import APIError
from routeway.observe.exports import CONTENT_LIMIT, Export, langfuse_batch, otlp_json
from routeway.observe.ids import traceparent
from routeway.observe.summary import CacheHit, Finished, completion_text, finished
from routeway.providers.http1 import ClientError, Pool, Target, header_block
from routeway.providers.redact import Redactor

if TYPE_CHECKING:
    from routeway.exchange.core import Exchange
    from routeway.exchange.events import Outcome

log = logging.getLogger("routeway.broadcast")

KINDS = ("otel-collector", "webhook", "langfuse")
BATCH = 100  # exchanges per request to a destination
FLUSH_SECONDS = 1.0  # a partial batch waits at most this long
QUEUE = 10_000  # exchanges held per destination while it is down; more drops the oldest
QUEUE_BYTES = 32 * 1024 * 1024  # ... and at most about this much of them (prompts and completions)
TRIES = 5  # sends of one batch before it is dropped
BACKOFF = (0.5, 30.0)  # first wait after a failure, doubling up to the second
TIMEOUT = 10.0  # seconds for one send, connection included
ANSWER_LIMIT = 64 * 1024  # bytes of a destination's answer read (and ignored)
_encoder = msgspec.json.Encoder()


def target_url(kind: str, endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    if kind == "otel-collector" and not endpoint.endswith("/v1/traces"):
        return endpoint + "/v1/traces"
    if kind == "langfuse":
        return endpoint + "/api/public/ingestion"
    return endpoint


def request_headers(kind: str, config: dict[str, Any]) -> dict[str, str]:
    headers = {"content-type": "application/json", "user-agent": "routeway-broadcast",
               **dict(config.get("headers") or {})}
    if kind == "langfuse":
        pair = f"{config['public_key']}:{config['secret_key']}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
    return headers


@dataclass(eq=False)
class Destination:
    id: str
    account_id: str
    kind: str
    target: Target
    headers: bytes
    sampling_rate: float
    privacy_mode: bool
    key_hashes: frozenset[str] | None
    redact: Redactor
    queue: deque[Export] = field(default_factory=deque)
    queued_bytes: int = 0
    sent: int = 0  # exchanges delivered
    dropped: int = 0  # exchanges given up on (queue full, or a batch failed TRIES times)
    last_error: str | None = None  # redacted
    retry_at: float = 0.0  # monotonic: no send before this (backing off)
    busy: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Destination:
        config = msgspec.json.decode(row["config"])
        headers = request_headers(row["type"], config)
        secrets = [v for v in (config.get("headers") or {}).values()] + [config.get("secret_key") or ""]
        hashes = msgspec.json.decode(row["api_key_hashes"]) if row["api_key_hashes"] else None
        return cls(id=row["id"], account_id=row["account_id"], kind=row["type"],
                   target=Target.parse(target_url(row["type"], config["endpoint"])), headers=header_block(headers),
                   sampling_rate=float(row["sampling_rate"]), privacy_mode=bool(row["privacy_mode"]),
                   key_hashes=frozenset(hashes) if hashes is not None else None, redact=Redactor(secrets))

    def wants(self, f: Finished) -> bool:
        """Its key filter, then its sampling: deterministic per session (whole sessions are kept), else per
        generation."""
        if self.key_hashes is not None and f.key_hash not in self.key_hashes:
            return False
        if self.sampling_rate >= 1:
            return True
        seed = (f.session_id or f.generation_id).encode()
        return int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "big") / 2**64 < self.sampling_rate

    def payload(self, batch: list[Export]) -> bytes:
        content = not self.privacy_mode
        body = langfuse_batch(batch, content) if self.kind == "langfuse" else otlp_json(batch, content)
        return _encoder.encode(body)

    def enqueue(self, export: Export) -> None:
        """Append, dropping the oldest while the queue is over its count or its bytes."""
        self.queue.append(export)
        self.queued_bytes += export.size
        while len(self.queue) > QUEUE or (self.queued_bytes > QUEUE_BYTES and len(self.queue) > 1):
            self.queued_bytes -= self.queue.popleft().size
            self.dropped += 1

    def take(self) -> list[Export]:
        batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
        self.queued_bytes -= sum(e.size for e in batch)
        return batch

    def status(self) -> dict[str, Any]:
        return {"queued": len(self.queue), "sent": self.sent, "dropped": self.dropped, "last_error": self.last_error}


class Broadcast:
    """Every enabled destination, by account; the exchange core tells it of each finished exchange."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.by_account: dict[str, list[Destination]] = {}
        self.by_id: dict[str, Destination] = {}
        self.rows: dict[str, dict[str, Any]] = {}  # the stored row each destination was built from
        self.wake = asyncio.Event()
        self.sending: set[asyncio.Task[None]] = set()

    # ---- the destinations ----------------------------------------------------------------------
    def put(self, row: dict[str, Any]) -> None:
        """Add or replace a destination (its queue and counters go with the replaced one). The row it was
        built from again changes nothing: a process is told of its own changes too (the change log)."""
        if self.rows.get(row["id"]) == row and row["id"] in self.by_id:
            return
        self.remove(row["id"])
        if not row["enabled"]:
            return
        destination = Destination.from_row(row)
        self.by_id[destination.id] = destination
        self.rows[destination.id] = dict(row)
        self.by_account.setdefault(destination.account_id, []).append(destination)

    def remove(self, destination_id: str) -> None:
        old = self.by_id.pop(destination_id, None)
        self.rows.pop(destination_id, None)
        if old is not None:
            peers = self.by_account[old.account_id]
            peers.remove(old)
            if not peers:
                del self.by_account[old.account_id]

    # ---- the request path: an append per destination, nothing else ------------------------------
    def exchange_done(self, ex: Exchange, outcome: Outcome | None, failure: APIError | None) -> None:
        destinations = self.by_account.get(ex.key.account_id)
        if not destinations or ex.record is None:  # generations only: refused before an upstream, nothing to send
            return
        f = finished(ex, outcome, failure)
        chosen = [d for d in destinations if d.wants(f)]
        if not chosen:
            return
        parent = traceparent(ex.headers.get("traceparent"))
        if ex.trace is not None:
            context = ex.trace.span.get_span_context()
            trace_id, parent_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
        elif parent is not None:
            trace_id, parent_id = parent[3:35], parent[36:52]
        else:
            trace_id, parent_id = os.urandom(16).hex(), None
        prompt: str | None = None
        completion = ""
        if any(not d.privacy_mode for d in chosen):
            messages = ex.chat.messages or [{"role": "user", "content": ex.chat.prompt or ""}]
            prompt = _encoder.encode(messages).decode()[:CONTENT_LIMIT]
            completion = completion_text(ex, outcome)[:CONTENT_LIMIT]
        self._enqueue(chosen, Export(f, trace_id, parent_id, prompt, completion))

    def cache_hit(self, hit: CacheHit) -> None:
        """A hit is a generation too (free): exported under the hit's span when traces are on."""
        f = hit.finished
        chosen = [d for d in self.by_account.get(f.account_id, ()) if d.wants(f)]
        if not chosen:
            return
        parent = traceparent(hit.headers.get("traceparent"))
        if hit.trace_id is not None:
            trace_id, parent_id = hit.trace_id, hit.span_id
        elif parent is not None:
            trace_id, parent_id = parent[3:35], parent[36:52]
        else:
            trace_id, parent_id = os.urandom(16).hex(), None
        prompt: str | None = None
        completion = ""
        if any(not d.privacy_mode for d in chosen):
            prompt = _encoder.encode(hit.messages).decode()[:CONTENT_LIMIT]
            completion = hit.completion[:CONTENT_LIMIT]
        self._enqueue(chosen, Export(f, trace_id, parent_id, prompt, completion))

    def _enqueue(self, chosen: list[Destination], export: Export) -> None:
        for destination in chosen:
            destination.enqueue(export)
            if len(destination.queue) >= BATCH:
                self.wake.set()

    # ---- the sender ---------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), FLUSH_SECONDS)
            self.wake.clear()
            self.flush_ready()

    def flush_ready(self) -> None:
        now = time.monotonic()
        for destination in list(self.by_id.values()):
            if destination.queue and not destination.busy and destination.retry_at <= now:
                destination.busy = True
                task = asyncio.create_task(self._deliver(destination))
                self.sending.add(task)
                task.add_done_callback(self.sending.discard)

    async def _deliver(self, d: Destination) -> None:
        """Send one batch, retrying it with backoff; newer exchanges wait in the queue meanwhile."""
        batch = d.take()
        try:
            wait = BACKOFF[0]
            for attempt in range(TRIES):
                problem = await self._send(d, d.payload(batch))
                if problem is None:
                    d.sent += len(batch)
                    d.last_error = None
                    return
                d.last_error = d.redact(problem)[:500]
                log.warning("destination %s (%s): %s (try %d of %d)", d.id, d.kind, d.last_error, attempt + 1, TRIES)
                if attempt + 1 < TRIES:
                    d.retry_at = time.monotonic() + wait
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, BACKOFF[1])
            d.dropped += len(batch)
        finally:
            d.busy = False

    async def _send(self, d: Destination, body: bytes) -> str | None:
        """None when the destination took the batch (any 2xx), else what went wrong."""
        try:
            async with asyncio.timeout(TIMEOUT):
                response = await self.pool.post(d.target, d.headers, body, connect_timeout=TIMEOUT,
                                                head_timeout=TIMEOUT, total_timeout=TIMEOUT, body_limit=ANSWER_LIMIT)
                try:
                    await response.read()
                finally:
                    response.close()
        except (ClientError, TimeoutError, OSError) as exc:
            return f"cannot deliver: {exc or type(exc).__name__}"
        return None if 200 <= response.status < 300 else f"answered HTTP {response.status}"

    async def stop(self) -> None:
        """One last try for what is queued (bounded by the send timeout), then stop."""
        for task in list(self.sending):
            task.cancel()
        await asyncio.gather(*self.sending, return_exceptions=True)
        for destination in self.by_id.values():
            destination.busy = False
            destination.retry_at = 0.0
        self.flush_ready()
        try:
            async with asyncio.timeout(TIMEOUT):
                await asyncio.gather(*self.sending, return_exceptions=True)
        except TimeoutError:
            pass
