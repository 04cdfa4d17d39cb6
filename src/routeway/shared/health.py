"""Endpoint health shared between replicas through a Redis stream, off the request path.

Each replica records outcomes in memory as it always did (``routing/health.py``) and also queues them;
every ``SYNC_SECONDS`` one pipelined round trip appends the queued outcomes to the stream (with the
breaker's opening time and the Retry-After deadline of each endpoint they touch) and reads what the other
replicas appended since the last read. Their outcomes are recorded here too, so every replica's view is
the merged one (uptime, latency percentiles, outages, the breaker's run of failures: routing, the
endpoints API, /metrics and the dashboard all read it), and a breaker opened anywhere opens everywhere
within ``SYNC_SECONDS`` plus a round trip. The stream is trimmed to about ``STREAM_KEPT`` entries.

While Redis is away, outcomes are recorded per process only (the queue is dropped, not kept to grow);
once it answers, the replica reads from the stream's end on and shares again."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import msgspec

from routeway.routing.breaker import CLOSED, OPEN
from routeway.routing.health import ERROR, OK, RATE_LIMITED, EndpointHealth, Health, HealthSettings
from routeway.shared.link import Link, Unavailable

log = logging.getLogger("routeway.shared")

SYNC_SECONDS = 0.5
STREAM_KEPT = 10_000
READ_BATCH = 1_000
MAX_QUEUED = 50_000  # outcomes queued between two syncs; past this they stay local (no unbounded growth)
OUTCOMES = (OK, ERROR, RATE_LIMITED)


class Batch(msgspec.Struct, array_like=True):
    """One replica's outcomes since its last sync, and its breakers' and Retry-After state."""

    replica: str
    outcomes: list[tuple[str, int, float | None, float | None]]  # (endpoint, outcome, ttft ms, tokens/s)
    opened: dict[str, float]  # endpoint -> when its breaker opened, for breakers open now
    retry_at: dict[str, float]  # endpoint -> until when the upstream asked not to be called


class SharedEndpointHealth(EndpointHealth):
    __slots__ = ("queue",)

    def __init__(self, key: str, settings: HealthSettings, queue: list[tuple[str, int, float | None, float | None]]
                 ) -> None:
        super().__init__(key, settings)
        self.queue = queue

    def record(self, outcome: int, now: float, ttft_ms: float | None = None, tokens_per_s: float | None = None) -> None:
        super().record(outcome, now, ttft_ms, tokens_per_s)
        if len(self.queue) < MAX_QUEUED:
            self.queue.append((self.key, outcome, ttft_ms, tokens_per_s))

    def record_remote(self, outcome: int, now: float, ttft_ms: float | None, tokens_per_s: float | None) -> None:
        EndpointHealth.record(self, outcome, now, ttft_ms, tokens_per_s)


class SharedHealth(Health):
    def __init__(self, settings: HealthSettings, link: Link) -> None:
        super().__init__(settings)
        self.link = link
        self.replica = uuid.uuid4().hex[:16]
        self.stream = link.key("health")
        self.queue: list[tuple[str, int, float | None, float | None]] = []
        self.last_id: str | None = None  # stream id read up to; None: start from the end
        self.decoder = msgspec.msgpack.Decoder(Batch)
        self.encoder = msgspec.msgpack.Encoder()

    def of(self, key: str) -> EndpointHealth:
        health = self.endpoints.get(key)
        if health is None:
            health = self.endpoints[key] = SharedEndpointHealth(key, self.settings, self.queue)
        return health

    async def sync_forever(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                await self.sync()
            except Unavailable:
                self.queue.clear()
                self.last_id = None
            except Exception:  # a bad entry must not stop sharing
                log.exception("sharing endpoint health failed")

    async def begin(self) -> None:
        """Read the stream from now on (at start, before serving, so no other replica's outcome is missed)."""
        seconds, micros = await self.link.call(self.link.client.time())
        # a millisecond back: an entry added in this very millisecond has an id above "<ms>-0" but reads are
        # exclusive of the id given, so "<ms>-0" itself would be missed
        self.last_id = f"{int(seconds) * 1000 + int(micros) // 1000 - 1}-0"

    async def sync(self) -> None:
        """Publish this replica's outcomes and apply the others' (one round trip once started)."""
        if self.link.degraded:
            raise Unavailable
        if self.last_id is None:
            await self.begin()
        read_from = self.last_id or "$"
        queued = self.queue[:]
        self.queue.clear()
        pipe = self.link.client.pipeline(transaction=False)
        if queued:
            pipe.xadd(self.stream, {"b": self.encoder.encode(self._batch(queued))}, maxlen=STREAM_KEPT,
                      approximate=True)
            pipe.expire(self.stream, 86400)  # an install that stopped leaves nothing behind for long
        pipe.xread({self.stream: read_from}, count=READ_BATCH)
        answers = await self.link.call(pipe.execute())
        for _, entries in answers[-1] or []:
            for entry_id, fields in entries:
                self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                self._apply(fields.get(b"b"))

    def _batch(self, queued: list[tuple[str, int, float | None, float | None]]) -> Batch:
        opened: dict[str, float] = {}
        retry_at: dict[str, float] = {}
        now = time.time()
        for key in {outcome[0] for outcome in queued}:
            health = self.endpoints[key]
            if health.breaker.state == OPEN:
                opened[key] = health.breaker.opened_at
            if health.retry_at > now:
                retry_at[key] = health.retry_at
        return Batch(self.replica, queued, opened, retry_at)

    def _apply(self, raw: Any) -> None:
        if not isinstance(raw, bytes):
            return
        try:
            batch = self.decoder.decode(raw)
        except msgspec.DecodeError:
            log.warning("ignored a shared health entry this version cannot read")
            return
        if batch.replica == self.replica:
            return
        now = time.time()  # outcomes are recorded as of now: the per-minute counters only ever move forward
        for key, outcome, ttft_ms, tokens_per_s in batch.outcomes:
            if outcome not in OUTCOMES:
                continue
            health = self.of(key)
            assert isinstance(health, SharedEndpointHealth)
            health.record_remote(outcome, now, _bounded(ttft_ms), _bounded(tokens_per_s))
        cooldown = self.settings.breaker_cooldown
        for key, opened_at in batch.opened.items():
            breaker = self.of(key).breaker
            # an open breaker elsewhere opens this one until the same moment (not a cool-down of its own, from
            # when the news arrived, as the others' failures recorded here would give it)
            if not now - cooldown < opened_at <= now + 1:
                continue
            if breaker.state == CLOSED or (breaker.state == OPEN and opened_at < breaker.opened_at):
                breaker.state, breaker.opened_at, breaker.probing = OPEN, opened_at, False
        for key, retry_at in batch.retry_at.items():
            health = self.of(key)
            health.retry_at = max(health.retry_at, min(retry_at, now + 86400))


def _bounded(value: float | None) -> float | None:
    """A sample from another process, kept only when it is a plausible number (NaN and inf are not)."""
    if value is None or not 0 <= value < 1e9:
        return None
    return float(value)
