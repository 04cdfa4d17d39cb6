"""The services routeway runs on, built once at start-up and handed to every route: the store, the
accounts book, metering, endpoint health, routing, rate limits and the upstream adapters. State is typed
by its interface (``interfaces.py``, ``store/base.py``) so another implementation (PostgreSQL, Redis)
replaces one line of ``build``. Modules that need the type import it from here, never from ``app.py``."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routeway.api.metrics import LoopLag
from routeway.api.throttle import Throttle
from routeway.cache.backends import CacheBackend, RedisBackend, StoreBackend
from routeway.cache.service import ResponseCache
from routeway.catalog import Catalog
from routeway.config import Settings
from routeway.connections import ConnectionStats
from routeway.interfaces import AccountsBook, ConcurrencyLimits, HealthRegistry, RateLimits
from routeway.ledger.accounts import Accounts
from routeway.ledger.book import Book
from routeway.ledger.follow import ChangeFollower
from routeway.ledger.leases import Leases
from routeway.ledger.metering import Metering
from routeway.observe.broadcast import Broadcast
from routeway.providers import Adapter, Redactor, adapter_class, build_adapter, check_apis
from routeway.providers.http1 import Pool
from routeway.routing.concurrency import Slots
from routeway.routing.health import Health, HealthSettings
from routeway.routing.persist import HealthLog
from routeway.routing.plan import Planner
from routeway.store.base import Store, StoreUnwritable
from routeway.store.destinations import DestinationRepository
from routeway.store.sqlite import SQLiteStore
from routeway.teams.guardrails import Guardrails
from routeway.teams.presets import Presets

if TYPE_CHECKING:
    from routeway.observe.logs import RequestLog
    from routeway.observe.summary import Watcher
    from routeway.observe.tracing import Tracing
    from routeway.shared import SharedState
    from routeway.web.session_store import SessionStore

log = logging.getLogger("routeway")

GC_YOUNG_THRESHOLD = 10_000  # net new container objects before a young collection (Python's default: 700)


def build_store(settings: Settings) -> Store:
    """PostgreSQL when a URL is configured, else the embedded SQLite store in the data folder."""
    if settings.store_url:
        from routeway.store.postgres import PostgresStore  # psycopg is loaded only by those who use it

        return PostgresStore(settings.store_url)
    return SQLiteStore(Path(settings.data_dir) / "routeway.sqlite3", settings.durability,
                       group_member=settings.worker is not None)


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    store: Store
    book: Book  # the balances in memory, behind ``accounts`` and ``metering``: api/ and web/ ask those
    accounts: AccountsBook
    metering: Metering
    health: HealthRegistry
    planner: Planner
    throttle: RateLimits
    redact: Redactor  # every configured secret, taken out of upstream errors (providers/redact.py)
    guardrails: Guardrails  # policies and budgets of each account's keys (teams/guardrails.py)
    presets: Presets  # request templates of each account (teams/presets.py)
    slots: ConcurrencyLimits = field(default_factory=Slots)  # requests in flight per capped engine and key
    adapters: dict[str, Adapter] = field(default_factory=dict)
    http: Pool = field(default_factory=Pool)  # upstream connections, kept alive between calls
    loop_lag: LoopLag = field(default_factory=LoopLag)
    connection_stats: ConnectionStats = field(default_factory=ConnectionStats)  # filled by connections.py
    health_log: HealthLog | None = None
    # (provider, reason) -> upstream answers whose usage was capped or rejected (routeway_usage_rejected_total)
    usage_rejections: Counter[tuple[str, str]] = field(default_factory=Counter)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    broadcast: Broadcast = field(default_factory=lambda: Broadcast(Pool()))  # each account's destinations
    tracing: Tracing | None = None  # OpenTelemetry, only when [telemetry] traces is on (observe/tracing.py)
    watchers: list[Watcher] = field(default_factory=list)  # told of every finished exchange (observe/)
    request_log: RequestLog | None = None  # [log] format = "json": a line per API request (observe/logs.py)
    # Set when other processes share the store (a worker of ``serve --workers N``): credit leases and the
    # change log they all follow. None when this process owns the store alone.
    leases: Leases | None = None
    follower: ChangeFollower | None = None
    shared: SharedState | None = None  # Redis, when [shared] redis is set: limits, health and sessions live there
    # dashboard sessions: in Redis, else in the store when other processes share it; None: in this process
    session_store: SessionStore | None = None
    response_cache: ResponseCache = field(init=False)

    def __post_init__(self) -> None:
        cache = self.settings.cache
        backend: CacheBackend = (RedisBackend(cache.redis_url, cache.redis_prefix) if cache.redis_url
                                 else StoreBackend(self.store))
        self.response_cache = ResponseCache(self.store, backend, cache.max_entry_bytes,
                                            logged=self.follower is not None)
        if self.follower is not None:  # settings held in memory follow the change log as accounts and keys do
            self.follower.on("response_cache", self.response_cache.follow)
            self.follower.on("destination", self.follow_destination)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        for provider in settings.providers:
            adapter_class(provider)  # an unknown kind fails here, before the server starts
        worker = settings.worker
        store = build_store(settings)
        book = Book()
        leases: Leases | None = None
        if worker is not None:
            leases = Leases(store, book, worker.holder, worker.processes)
        elif settings.store_url:  # a replica on a shared PostgreSQL: its leases expire if it dies
            leases = Leases(store, book, f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}",
                            max(2, settings.workers))
        accounts = Accounts(store, book, leases)
        catalog = Catalog.build(settings)
        check_apis(catalog)
        r = settings.routing
        health_settings = HealthSettings(breaker_threshold=r.breaker_threshold, breaker_cooldown=r.breaker_cooldown)
        health: HealthRegistry = Health(health_settings)
        throttle: RateLimits = Throttle(settings.limits)
        shared = None
        session_store: SessionStore | None = None
        if settings.shared.redis:
            from routeway.shared import build_shared

            shared = build_shared(settings, health_settings)
            health, throttle, session_store = shared.health, shared.throttle, shared.sessions
        elif leases is not None:  # other processes share the store: sessions there, so any of them finds one
            from routeway.store.sessions import StoreSessionStore

            session_store = StoreSessionStore(store)
        services = cls(settings=settings, catalog=catalog, store=store, book=book, accounts=accounts,
                       metering=Metering(store, book, leases), health=health, planner=Planner(catalog, health),
                       throttle=throttle, redact=Redactor.from_settings(settings), leases=leases,
                       follower=ChangeFollower(accounts) if leases is not None else None, shared=shared,
                       session_store=session_store, guardrails=Guardrails(store, book, leases),
                       presets=Presets(store, logged=leases is not None))
        accounts.key_listeners.append(services.guardrails.refresh)
        if shared is not None:
            services.slots = shared.slots
        elif worker is not None:  # no Redis to count in: each worker takes its share of every cap
            services.slots = Slots(worker.processes)
        services.broadcast = Broadcast(services.http)
        services.watch(settings)
        return services

    def broadcasting(self, row: dict[str, Any]) -> None:
        """A destination was stored: it gets what follows. The first one makes the broadcast a watcher (until
        then an exchange pays nothing for it)."""
        self.broadcast.put(row)
        if self.broadcast.by_id and self.broadcast not in self.watchers:
            self.watchers.append(self.broadcast)

    async def follow_destination(self, destination_id: str) -> None:
        """A destination changed, maybe through another process: read it back and apply it."""
        row = await DestinationRepository(self.store).by_id(destination_id)
        if row is None or not row["enabled"]:
            self.broadcast.remove(destination_id)
            return
        try:
            self.broadcasting(row)
        except (ValueError, KeyError) as exc:  # one unusable row must not stop following
            log.error("observability destination %s cannot be used, skipped: %s", destination_id, exc)

    def watch(self, settings: Settings) -> None:
        """The observers the settings ask for; none by default, so the exchange core does nothing more."""
        if settings.telemetry.traces:
            from routeway.observe.tracing import Tracing  # OpenTelemetry is loaded only when traces are on

            self.tracing = Tracing(settings.telemetry, settings.env)
            self.watchers.append(self.tracing)
        if settings.telemetry.log_format == "json":
            from routeway.observe.logs import RequestLog

            self.request_log = RequestLog()
            self.watchers.append(self.request_log)

    async def start(self) -> None:
        self.store.open()
        if self.follower is not None:
            self.follower.start_now()  # before the load: a change made meanwhile is applied again, never missed
        self.accounts.load()
        self.response_cache.load()
        self.guardrails.load()
        self.presets.load()
        self.health_log = HealthLog(self.store, self.health)
        self.health_log.load(time.time())
        worker = self.settings.worker
        # Each worker keeps its own endpoint health; one of them writes its minutes (they would overwrite
        # each other's rows otherwise).
        if worker is None or worker.index == 0:
            self.tasks.append(asyncio.create_task(self.health_log.run(self.settings.routing.health_flush_seconds)))
        if self.leases is not None and self.follower is not None:
            self.follower.on("guardrail", self.guardrails.reload)
            self.follower.on("preset", self.presets.reload)
            self.tasks.append(asyncio.create_task(self.leases.run()))
            self.tasks.append(asyncio.create_task(self.follower.run()))
        self.tasks.append(asyncio.create_task(self.throttle.sweep_forever()))
        if self.shared is not None:
            self.tasks.extend(await self.shared.start())
        self.tasks.append(asyncio.create_task(self.loop_lag.run()))
        self.tasks.append(asyncio.create_task(self.metering.pending.run()))
        for row in DestinationRepository(self.store).enabled_now():
            try:
                self.broadcasting(row)
            except (ValueError, KeyError) as exc:  # one unusable row must not stop the server
                log.error("observability destination %s cannot be used, skipped: %s", row["id"], exc)
        self.tasks.append(asyncio.create_task(self.broadcast.run()))
        self.adapters = {p.name: build_adapter(p, self.http, self.settings.env, self.redact)
                         for p in self.settings.providers}
        for adapter in self.adapters.values():
            await adapter.start()
        gc.collect()
        gc.freeze()  # start-up objects never move to gen 2 again: no long pauses from scanning them
        # The requests in flight hold a few hundred objects each, so at the default threshold (700) the
        # young generation fills ~60 times per 1,000 requests and every collection walks (and promotes)
        # live requests' objects only: ~9 µs of CPU per request. At 10,000 it fills about once a second at
        # saturation (bench/NOTES.md step 27); cyclic garbage is still collected, in larger batches.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    async def stop(self) -> None:
        await asyncio.gather(*(adapter.stop() for adapter in self.adapters.values()), return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.broadcast.stop()
        if self.health_log is not None and (self.settings.worker is None or self.settings.worker.index == 0):
            try:
                await self.health_log.flush(time.time())
            except StoreUnwritable:
                log.warning("the last minutes of endpoint health could not be written: the store cannot write")
        await self.metering.pending.retry(force=True)
        self.metering.pending.report_lost()
        if self.leases is not None and not self.metering.pending.waiting:
            await self.leases.release()  # held settlements still spend them: those leases expire instead
        await self.response_cache.close()
        self.http.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # the last spans go out
        if self.shared is not None:
            await self.shared.close()
        self.store.close()
