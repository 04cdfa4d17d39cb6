"""The one Redis connection routeway's shared state goes through, and whether it is usable now.

Every call has a short timeout (``[shared] timeout_seconds``, 0.25 s) and no retry. The first failure
marks the link *degraded*: one warning in the log, ``routeway_shared_state_degraded`` 1 on /metrics, and
from then on callers skip Redis and use their per-process fallback at once, so a Redis that is down or
stalled costs a request nothing. A background watch pings Redis every ``PROBE_SECONDS``; the first answer
ends the degraded state (one info line) and callers share again by themselves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from routeway.config import SharedSettings

log = logging.getLogger("routeway.shared")

PROBE_SECONDS = 0.5  # how soon a Redis that came back is used again
MAX_CONNECTIONS = 64  # to Redis, per process (script calls of one loop turn share one: ``Batcher``)
MAX_BATCH = 512  # script calls sent in one pipeline
T = TypeVar("T")

FAILURES = (RedisError, OSError, asyncio.TimeoutError)  # what "Redis is away" looks like to redis-py


class Unavailable(Exception):
    """Redis is away (or was a moment ago): use the per-process fallback."""


class Link:
    def __init__(self, settings: SharedSettings) -> None:
        assert settings.redis is not None
        self.url = settings.redis
        self.prefix = settings.prefix
        self.timeout = settings.timeout_seconds
        # a bounded pool that waits (up to the timeout) for a free connection rather than failing at once
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis, max_connections=MAX_CONNECTIONS, timeout=self.timeout, socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout, retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self.client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self.scripts = Batcher(self)  # the hot path's script calls, batched per loop turn
        self.degraded = False
        self.failures = 0  # calls that failed, since start (routeway_shared_state_failures_total)
        self.degraded_spells = 0  # times the link went from shared to degraded

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def call(self, work: Awaitable[T]) -> T:
        """``work``'s result, or ``Unavailable`` at once while degraded, or after one failure (bounded by the
        timeout, in case a stalled Redis leaves a socket open without answering)."""
        if self.degraded:
            if asyncio.iscoroutine(work):
                work.close()  # never started: no "was never awaited" warning
            raise Unavailable
        try:
            async with asyncio.timeout(self.timeout * 2):
                return await work
        except FAILURES as exc:
            self.failed(exc)
            raise Unavailable from exc

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if not self.degraded:
            self.degraded = True
            self.degraded_spells += 1
            log.warning("Redis at %s is unreachable (%s): rate limits, endpoint health and dashboard sessions are"
                        " per process until it answers again", self._where(), type(exc).__name__)

    async def check(self) -> None:
        """At start: say where shared state lives, or warn now that it cannot (then serve per process)."""
        try:
            await self.call(self.client.ping())
        except Unavailable:
            return
        log.info("shared state (rate limits, endpoint health, dashboard sessions) in Redis at %s, keys %s*",
                 self._where(), self.prefix)

    async def watch_forever(self) -> None:
        """Ping while degraded; the first answer shares again."""
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            if not self.degraded:
                continue
            try:
                async with asyncio.timeout(self.timeout * 2):
                    await self.client.ping()
            except FAILURES:
                continue
            self.degraded = False
            log.info("Redis at %s answers again: shared state restored", self._where())

    async def close(self) -> None:
        with contextlib.suppress(*FAILURES):
            await self.client.aclose(close_connection_pool=True)

    def _where(self) -> str:
        """The URL without its password."""
        head, _, tail = self.url.rpartition("@")
        return f"{head.split('://')[0]}://…@{tail}" if head else self.url


class Batcher:
    """Script calls made during one turn of the event loop go to Redis in one pipeline: one write and one
    read for all of them instead of one each (under load, many requests check their limits in the same
    turn), and one connection instead of one per call, so a burst of thousands of requests does not open
    or wait for thousands of connections."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.pending: list[tuple[AsyncScript, list[Any], list[Any], asyncio.Future[Any]]] = []
        self.sending: set[asyncio.Future[None]] = set()

    async def run(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        """The script's answer, or ``Unavailable``."""
        if self.link.degraded:
            raise Unavailable
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self.pending.append((script, keys, args, answer))
        return await answer

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        for start in range(0, len(batch), MAX_BATCH):
            task = asyncio.ensure_future(self._send(batch[start:start + MAX_BATCH]))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)

    async def _send(self, batch: list[tuple[AsyncScript, list[Any], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self.link.call(self._execute(batch))
        except Unavailable:
            for *_, answer in batch:
                if not answer.done():
                    answer.set_exception(Unavailable())
            return
        for (*_, answer), result in zip(batch, results, strict=True):
            if answer.done():
                continue
            if isinstance(result, Exception):  # a script Redis refused: counted as Redis away, never a 500
                self.link.failed(result)
                answer.set_exception(Unavailable())
            else:
                answer.set_result(result)

    async def _execute(self, batch: list[tuple[AsyncScript, list[Any], list[Any], asyncio.Future[Any]]]
                       ) -> list[Any]:
        client = self.link.client
        for attempt in range(2):
            pipe = client.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                for script in {id(s): s for s, *_ in batch}.values():  # Redis restarted: load them again
                    await client.script_load(script.script)
                continue
            return results
        return results

