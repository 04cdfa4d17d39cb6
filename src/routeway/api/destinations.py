"""The account's observability destinations (OpenRouter's broadcast), with a management key:
GET|POST /observability/destinations, GET|PATCH|DELETE /observability/destinations/{id}. Secrets a
destination authenticates with (its header values, Langfuse's secret key) are stored for sending and
never shown back: answers carry ``[REDACTED]`` in their place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from routeway.api.auth import authenticate
from routeway.api.http import Request, Response, json_response
from routeway.errors import APIError, store_unavailable
from routeway.ledger.accounts import now_ms
from routeway.ledger.ids import new_id
from routeway.observe.broadcast import request_headers, target_url
from routeway.providers.http1 import Target, header_block
from routeway.store.base import Op, StoreUnwritable
from routeway.store.destinations import DestinationRepository
from routeway.wire.decode import decode

if TYPE_CHECKING:
    from routeway.services import Services

REDACTED = "[REDACTED]"
Kind = Literal["otel-collector", "webhook", "langfuse"]
HeaderName = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
HeaderValue = Annotated[str, Meta(max_length=4096)]
Rate = Annotated[float, Meta(ge=0.0001, le=1)]
MAX_PER_ACCOUNT = 20


class DestinationConfig(Struct, forbid_unknown_fields=True):
    """``endpoint``: the collector's base URL (``/v1/traces`` is added), the webhook's URL, or Langfuse's
    base URL; ``headers`` go with every send; Langfuse authenticates with its key pair."""

    endpoint: Annotated[str, Meta(min_length=1, max_length=2048)]
    headers: Annotated[dict[HeaderName, HeaderValue], Meta(max_length=32)] = {}
    public_key: Annotated[str, Meta(max_length=512)] | None = None
    secret_key: Annotated[str, Meta(max_length=512)] | None = None


class DestinationCreate(Struct, forbid_unknown_fields=False):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    type: Kind
    config: DestinationConfig
    sampling_rate: Rate = 1.0
    privacy_mode: bool = False  # prompts and completions stay out of what is sent
    api_key_hashes: Annotated[list[Annotated[str, Meta(max_length=128)]], Meta(max_length=1000)] | None = None
    enabled: bool = True


class DestinationPatch(Struct, forbid_unknown_fields=False):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    config: DestinationConfig | None = None
    sampling_rate: Rate | None = None
    privacy_mode: bool | None = None
    api_key_hashes: Annotated[list[Annotated[str, Meta(max_length=128)]], Meta(max_length=1000)] | None = None
    enabled: bool | None = None


class DestinationView(Struct):
    id: str
    name: str
    type: str
    config: dict[str, Any]
    sampling_rate: float
    privacy_mode: bool
    api_key_hashes: list[str] | None
    enabled: bool
    created_at: int
    updated_at: int | None
    status: dict[str, Any] | None = None  # queued, sent, dropped, last_error (redacted), while enabled


class DestinationResponse(Struct):
    data: DestinationView


class DestinationsListResponse(Struct):
    data: list[DestinationView]


def checked_config(kind: str, config: DestinationConfig) -> dict[str, Any]:
    """The config as stored, once its URL parses and its headers could travel on a request."""
    values = msgspec.to_builtins(config)
    if kind == "langfuse" and not (config.public_key and config.secret_key):
        raise APIError(400, "Invalid request: a langfuse destination needs config.public_key and config.secret_key",
                       metadata={"param": "config"})
    try:
        Target.parse(target_url(kind, config.endpoint))
    except ValueError:
        raise APIError(400, "Invalid request: config.endpoint must be an http:// or https:// URL",
                       metadata={"param": "config.endpoint"}) from None
    try:
        header_block(request_headers(kind, values))
    except ValueError:
        raise APIError(400, "Invalid request: a header value holds a character HTTP does not allow",
                       metadata={"param": "config.headers"}) from None
    return dict(values)


def view(row: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
    config = msgspec.json.decode(row["config"])
    shown = {"endpoint": config["endpoint"], "headers": {name: REDACTED for name in config.get("headers") or {}}}
    if config.get("public_key"):
        shown["public_key"] = config["public_key"]
    if config.get("secret_key"):
        shown["secret_key"] = REDACTED
    return {"id": row["id"], "name": row["name"], "type": row["type"], "config": shown,
            "sampling_rate": row["sampling_rate"], "privacy_mode": bool(row["privacy_mode"]),
            "api_key_hashes": msgspec.json.decode(row["api_key_hashes"]) if row["api_key_hashes"] else None,
            "enabled": bool(row["enabled"]), "created_at": row["created_at"], "updated_at": row["updated_at"],
            "status": status}


def routes(services: Services) -> list[tuple[str, str, Any]]:
    repository = DestinationRepository(services.store)
    limit = services.settings.max_body_bytes

    async def write(op: Op) -> None:
        try:
            await services.store.write([op])
        except StoreUnwritable as exc:
            raise store_unavailable(exc.problem) from None

    def status_of(row: dict[str, Any]) -> dict[str, Any] | None:
        destination = services.broadcast.by_id.get(row["id"])
        return destination.status() if destination is not None else None

    async def owned(request: Request) -> tuple[str, dict[str, Any]]:
        key = authenticate(services, request, management=True)
        row = await repository.get(request.path_params["id"], key.account_id)
        if row is None:
            raise APIError(404, f"No observability destination {request.path_params['id']} in this account.")
        return key.account_id, row

    async def list_destinations(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        rows = await repository.of_account(key.account_id)
        return json_response({"data": [view(r, status_of(r)) for r in rows]})

    async def create_destination(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        body = decode(await request.body(limit), DestinationCreate)
        config = checked_config(body.type, body.config)
        if len(await repository.of_account(key.account_id)) >= MAX_PER_ACCOUNT:
            raise APIError(400, f"Invalid request: an account has at most {MAX_PER_ACCOUNT} destinations")
        row = {"id": new_id("dst"), "account_id": key.account_id, "name": body.name, "type": body.type,
               "config": msgspec.json.encode(config).decode(), "sampling_rate": body.sampling_rate,
               "privacy_mode": int(body.privacy_mode), "enabled": int(body.enabled),
               "api_key_hashes": msgspec.json.encode(body.api_key_hashes).decode() if body.api_key_hashes is not None
               else None, "created_at": now_ms(), "updated_at": None}
        await write(repository.insert(row))
        services.broadcasting(row)
        return json_response({"data": view(row, status_of(row))}, status=201)

    async def get_destination(request: Request) -> Response:
        _, row = await owned(request)
        return json_response({"data": view(row, status_of(row))})

    async def update_destination(request: Request) -> Response:
        _, row = await owned(request)
        patch = decode(await request.body(limit), DestinationPatch)
        if patch.config is not None:
            row["config"] = msgspec.json.encode(checked_config(row["type"], patch.config)).decode()
        for name in ("name", "sampling_rate"):
            if getattr(patch, name) is not None:
                row[name] = getattr(patch, name)
        for name in ("privacy_mode", "enabled"):
            if getattr(patch, name) is not None:
                row[name] = int(getattr(patch, name))
        if patch.api_key_hashes is not None:
            row["api_key_hashes"] = msgspec.json.encode(patch.api_key_hashes).decode()
        row["updated_at"] = now_ms()
        await write(repository.update(row))
        services.broadcasting(row)
        return json_response({"data": view(row, status_of(row))})

    async def delete_destination(request: Request) -> Response:
        account_id, row = await owned(request)
        await write(repository.delete(row["id"], account_id))
        services.broadcast.remove(row["id"])
        return json_response({"deleted": True})

    return [
        ("GET", "/observability/destinations", list_destinations),
        ("POST", "/observability/destinations", create_destination),
        ("GET", "/observability/destinations/{id}", get_destination),
        ("PATCH", "/observability/destinations/{id}", update_destination),
        ("DELETE", "/observability/destinations/{id}", delete_destination),
    ]
