"""The services routeway runs on, built once at start-up and handed to every route: the store, the
accounts book, metering, endpoint health, routing, rate limits and the upstream adapters. State is typed
by its interface (``interfaces.py``, ``store/base.py``) so another implementation (PostgreSQL, Redis)
replaces one line of ``build``. Modules that need the type import it from here, never from ``app.py``."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from routeway.api.metrics import LoopLag
from routeway.api.throttle import Throttle
from routeway.cache.backends import CacheBackend, RedisBackend, StoreBackend
from routeway.cache.service import ResponseCache
from routeway.catalog import Catalog
from routeway.config import Settings
from routeway.connections import ConnectionStats
from routeway.interfaces import AccountsBook, HealthRegistry, RateLimits
from routeway.ledger.accounts import Accounts
from routeway.ledger.book import Book
from routeway.ledger.metering import Metering
from routeway.providers import Adapter, Redactor, adapter_class, build_adapter, check_apis
from routeway.providers.http1 import Pool
from routeway.routing.health import Health, HealthSettings
from routeway.routing.persist import HealthLog
from routeway.routing.plan import Planner
from routeway.store.base import Store, StoreUnwritable
from routeway.store.sqlite import SQLiteStore

log = logging.getLogger("routeway")

GC_YOUNG_THRESHOLD = 10_000  # net new container objects before a young collection (Python's default: 700)


def build_store(settings: Settings) -> Store:
    """PostgreSQL when a URL is configured, else the embedded SQLite store in the data folder."""
    if settings.store_url:
        from routeway.store.postgres import PostgresStore  # psycopg is loaded only by those who use it

        return PostgresStore(settings.store_url)
    return SQLiteStore(Path(settings.data_dir) / "routeway.sqlite3", settings.durability)


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
    adapters: dict[str, Adapter] = field(default_factory=dict)
    http: Pool = field(default_factory=Pool)  # upstream connections, kept alive between calls
    loop_lag: LoopLag = field(default_factory=LoopLag)
    connection_stats: ConnectionStats = field(default_factory=ConnectionStats)  # filled by connections.py
    health_log: HealthLog | None = None
    # (provider, reason) -> upstream answers whose usage was capped or rejected (routeway_usage_rejected_total)
    usage_rejections: Counter[tuple[str, str]] = field(default_factory=Counter)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    response_cache: ResponseCache = field(init=False)

    def __post_init__(self) -> None:
        cache = self.settings.cache
        backend: CacheBackend = (RedisBackend(cache.redis_url, cache.redis_prefix) if cache.redis_url
                                 else StoreBackend(self.store))
        self.response_cache = ResponseCache(self.store, backend, cache.max_entry_bytes)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        for provider in settings.providers:
            adapter_class(provider)  # an unknown kind fails here, before the server starts
        store = build_store(settings)
        book = Book()
        catalog = Catalog.build(settings)
        check_apis(catalog)
        r = settings.routing
        health = Health(HealthSettings(breaker_threshold=r.breaker_threshold, breaker_cooldown=r.breaker_cooldown))
        return cls(settings=settings, catalog=catalog, store=store, book=book, accounts=Accounts(store, book),
                   metering=Metering(store, book), health=health, planner=Planner(catalog, health),
                   throttle=Throttle(settings.limits), redact=Redactor.from_settings(settings))

    async def start(self) -> None:
        self.store.open()
        self.accounts.load()
        self.response_cache.load()
        self.health_log = HealthLog(self.store, self.health)
        self.health_log.load(time.time())
        self.tasks.append(asyncio.create_task(self.health_log.run(self.settings.routing.health_flush_seconds)))
        self.tasks.append(asyncio.create_task(self.throttle.sweep_forever()))
        self.tasks.append(asyncio.create_task(self.loop_lag.run()))
        self.tasks.append(asyncio.create_task(self.metering.pending.run()))
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
        if self.health_log is not None:
            try:
                await self.health_log.flush(time.time())
            except StoreUnwritable:
                log.warning("the last minutes of endpoint health could not be written: the store cannot write")
        await self.metering.pending.retry(force=True)
        self.metering.pending.report_lost()
        await self.response_cache.close()
        self.http.close()
        self.store.close()
