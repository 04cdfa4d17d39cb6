"""Assembles routeway: services built once at start-up, routes, and the ASGI entry point."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from routeway.api import admin, catalog as catalog_api, chat, generation, keys, openapi
from routeway.api.http import (ClientDisconnected, Receive, Request, Response, Router, Scope, Send, error_response,
                               json_response)
from routeway.api.metrics import LoopLag, metrics_handler
from routeway.api.throttle import Throttle
from routeway.catalog import Catalog
from routeway.config import Settings
from routeway.connections import ConnectionStats
from routeway.errors import APIError
from routeway.ledger.accounts import Accounts
from routeway.ledger.book import Book
from routeway.ledger.metering import Metering
from routeway.providers import Adapter, Redactor, adapter_class, build_adapter
from routeway.providers.http1 import Pool
from routeway.routing.health import Health, HealthSettings
from routeway.routing.persist import HealthLog
from routeway.routing.plan import Planner
from routeway.store.base import StoreUnwritable
from routeway.store.sqlite import SQLiteStore
from routeway.web import Dashboard

log = logging.getLogger("routeway")

PREFIXES = ("/api/v1", "/v1")


def ensure_admin_key(settings: Settings) -> Settings:
    """Without ROUTEWAY_ADMIN_KEY, an operator key is generated once and kept in the data folder."""
    if settings.admin_key:
        return settings
    path = Path(settings.data_dir) / "admin.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("rw-admin-" + secrets.token_hex(24) + "\n")
        path.chmod(0o600)
    return replace(settings, admin_key=path.read_text().strip())


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    store: SQLiteStore
    book: Book
    accounts: Accounts
    metering: Metering
    health: Health
    planner: Planner
    throttle: Throttle
    redact: Redactor  # every configured secret, taken out of upstream errors (providers/redact.py)
    adapters: dict[str, Adapter] = field(default_factory=dict)
    http: Pool = field(default_factory=Pool)  # upstream connections, kept alive between calls
    loop_lag: LoopLag = field(default_factory=LoopLag)
    connection_stats: ConnectionStats = field(default_factory=ConnectionStats)  # filled by connections.py
    health_log: HealthLog | None = None
    # (provider, reason) -> upstream answers whose usage was capped or rejected (routeway_usage_rejected_total)
    usage_rejections: Counter[tuple[str, str]] = field(default_factory=Counter)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        for provider in settings.providers:
            adapter_class(provider)  # an unknown kind fails here, before the server starts
        store = SQLiteStore(Path(settings.data_dir) / "routeway.sqlite3", settings.durability)
        book = Book()
        catalog = Catalog.build(settings)
        r = settings.routing
        health = Health(HealthSettings(breaker_threshold=r.breaker_threshold, breaker_cooldown=r.breaker_cooldown))
        return cls(settings=settings, catalog=catalog, store=store, book=book, accounts=Accounts(store, book),
                   metering=Metering(store, book), health=health, planner=Planner(catalog, health),
                   throttle=Throttle(settings.limits), redact=Redactor.from_settings(settings))

    async def start(self) -> None:
        self.store.open()
        self.accounts.load()
        self.health_log = HealthLog(self.store, self.health)
        self.health_log.load(time.time())
        self.tasks.append(asyncio.create_task(self.health_log.run(self.settings.routing.health_flush_seconds)))
        self.tasks.append(asyncio.create_task(self.throttle.sweep_forever()))
        self.tasks.append(asyncio.create_task(self.loop_lag.run()))
        self.tasks.append(asyncio.create_task(self.metering.pending.run()))
        self.adapters = {p.name: build_adapter(p, self.http, self.settings.env, self.redact)
                         for p in self.settings.providers}
        for adapter in self.adapters.values():
            if hasattr(adapter, "start"):
                await adapter.start()  # a local model's worker process
        gc.collect()
        gc.freeze()  # start-up objects never move to gen 2 again: no long pauses from scanning them

    async def stop(self) -> None:
        await asyncio.gather(*(adapter.stop() for adapter in self.adapters.values() if hasattr(adapter, "stop")),
                             return_exceptions=True)
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
        self.http.close()
        self.store.close()


class App:
    def __init__(self, settings: Settings) -> None:
        self.services = Services.build(settings)
        self.router = Router()
        for module in (chat, catalog_api, keys, generation, admin):
            for method, path, handler in module.routes(self.services):
                self.router.add(method, path, handler)
        openapi.install(self.router)  # last: it documents every route above
        self.metrics = metrics_handler(self.services)
        self.dashboard = Dashboard(self.services)  # every other path: the web dashboard (routeway.web)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                request.send = send  # the rest of the response goes straight out (one call less per chunk)
            await send(message)

        request = Request(scope, receive, tracked_send)
        try:
            for prefix in PREFIXES:
                if path.startswith(prefix + "/"):
                    handler, request.path_params = self.router.resolve(scope["method"], path[len(prefix):])
                    break
            else:
                if path == "/metrics":
                    await (await self.metrics(request))(send)
                    return
                if path == "/health":
                    await self._health()(send)
                    return
                await self.dashboard(request)
                return
            response = await handler(request)
            if response is not None:
                await response(tracked_send)
        except ClientDisconnected:
            return
        except APIError as error:
            if not started:
                await error_response(error)(send)
        except Exception as exc:
            if _too_deep(exc):
                error = APIError(400, "Request body is not usable JSON: arrays and objects are nested too deeply.")
            else:
                log.exception("unhandled error on %s %s", scope["method"], path)
                error = APIError(500, "Internal error; the server log has details.")
            if not started:
                await error_response(error)(send)

    def _health(self) -> Response:
        """200 while the store can write; 503 saying what is wrong when it cannot (paid work is refused)."""
        store, pending = self.services.store, self.services.metering.pending
        body: dict[str, Any] = {"status": "ok", "api": "/api/v1", "openai_compatible": "/v1"}
        if pending.waiting:
            body["held_settlements"] = len(pending.waiting)
        if store.writable:
            return json_response(body)
        body.update(status="degraded", store=f"cannot write: {store.problem}")
        return json_response(body, status=503)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.services.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.services.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _too_deep(exc: Exception) -> bool:
    """msgspec's words for a body nested beyond the interpreter's recursion limit (keys, admin: a typed
    decode recurses even into the unknown fields it skips)."""
    return isinstance(exc, RecursionError) and "deserializing" in str(exc)


def create_app(settings: Settings) -> Any:
    return App(ensure_admin_key(settings))
