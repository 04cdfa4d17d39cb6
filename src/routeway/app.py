"""Assembles routeway: services built once at start-up, routes, and the ASGI entry point."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from routeway.api import (
    activity,
    admin,
    catalog as catalog_api,
    chat,
    completions,
    destinations,
    embeddings,
    generation,
    guardrails,
    keys,
    messages,
    openapi,
    presets,
    responses,
)
from routeway.api.http import (
    ClientDisconnected,
    Handler,
    Receive,
    Request,
    Response,
    Router,
    Scope,
    Send,
    error_response,
    json_response,
)
from routeway.api.metrics import metrics_handler
from routeway.config import Settings
from routeway.errors import APIError, store_unavailable
from routeway.observe.ids import REQUEST_ID, request_id
from routeway.services import Services
from routeway.store.base import StoreUnwritable
from routeway.web import Dashboard

# Services is re-exported for the modules that still import it from here (web/sessions.py, this round)
__all__ = ["App", "Services", "create_app", "ensure_admin_key"]

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


class App:
    def __init__(self, settings: Settings) -> None:
        self.services = Services.build(settings)
        self.router: Router[Handler] = Router()
        for module in (chat, messages, responses, catalog_api, keys, generation, admin, destinations, completions,
                       embeddings, activity, guardrails, presets):
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
        answer_id: bytes | None = None  # the API's X-Request-Id: the client's, or made here
        status = 0
        began = time.monotonic() if self.services.request_log is not None else 0.0

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                if answer_id is not None:  # a copy: responses share their header lists
                    message = {**message, "headers": [*message.get("headers", ()), (b"x-request-id", answer_id)]}
                request.send = send  # the rest of the response goes straight out (one call less per chunk)
            await send(message)

        request = Request(scope, receive, tracked_send)
        try:
            for prefix in PREFIXES:
                if path.startswith(prefix + "/"):
                    given = request.headers[REQUEST_ID] = request_id(request.headers.get(REQUEST_ID))
                    answer_id = given.encode()
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
                await error_response(error)(tracked_send)
        except StoreUnwritable as unreachable:  # a read while the database is away (PostgreSQL down): 503, not 500
            if not started:
                await error_response(store_unavailable(unreachable.problem))(tracked_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], path)
            if not started:
                await error_response(APIError(500, "Internal error; the server log has details."))(tracked_send)
        finally:
            if answer_id is not None and self.services.request_log is not None:
                self.services.request_log.api_request(scope["method"], path, answer_id, status, began)

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


def create_app(settings: Settings) -> Any:
    return App(ensure_admin_key(settings))
