"""GET /key, GET /credits, and the management API for keys: GET|POST /keys, GET|PATCH|DELETE /keys/{hash}."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from routeway.api.auth import authenticate
from routeway.api.http import Request, Response, json_response
from routeway.api.views import key_view
from routeway.errors import APIError
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import KeyState
from routeway.ledger.money import UsdAmount, nano_to_usd, usd_to_nano
from routeway.ledger.periods import parse_iso_ms
from routeway.wire.decode import decode

if TYPE_CHECKING:
    from routeway.services import Services

Reset = Literal["daily", "weekly", "monthly"]


class KeyCreate(Struct, forbid_unknown_fields=False):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    limit: UsdAmount | None = None
    limit_reset: Reset | None = None
    include_byok_in_limit: bool = False
    expires_at: str | None = None


class KeyPatch(Struct, forbid_unknown_fields=False):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    disabled: bool | None = None
    limit: UsdAmount | msgspec.UnsetType | None = msgspec.UNSET
    limit_reset: Reset | msgspec.UnsetType | None = msgspec.UNSET
    include_byok_in_limit: bool | None = None


def expiry_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = parse_iso_ms(text)
    except ValueError:
        raise APIError(400, f"Invalid request: expires_at {text!r} is not an ISO 8601 time",
                       metadata={"param": "expires_at"}) from None
    if value <= now_ms():
        raise APIError(400, "Invalid request: expires_at must be in the future", metadata={"param": "expires_at"})
    return value


def routes(services: Services) -> list[tuple[str, str, Any]]:
    accounts = services.accounts
    limit = services.settings.max_body_bytes

    def owned(key: KeyState, key_hash: str) -> KeyState:
        """An API key of the caller's account. Management keys (peers and the caller itself) belong to
        the operator, as provisioning keys on OpenRouter manage API keys only: to a management key they
        do not exist, so it can neither read nor re-enable, rename or delete them."""
        target = accounts.key(key_hash)
        if target is None or target.deleted or target.account_id != key.account_id or target.is_management:
            raise APIError(404, f"No key with hash {key_hash} in this account.")
        return target

    async def current_key(request: Request) -> Response:
        key = authenticate(services, request)
        view = key_view(key, now_ms())
        view.update(is_provisioning_key=key.is_management, organization_id=None,
                    workspace_id=None, allowed_data_regions=["global"], budgets=[], effective_budget=None,
                    **await services.throttle.describe(accounts.of_key(key)))
        return json_response({"data": view})

    async def credits(request: Request) -> Response:
        key = authenticate(services, request)
        account = accounts.of_key(key)
        return json_response({"data": {"total_credits": nano_to_usd(account.credits),
                                       "total_usage": nano_to_usd(account.usage)}})

    async def list_keys(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        include_disabled = request.query.get("include_disabled", "false").lower() == "true"
        offset = request.query_int("offset", 0)
        now = now_ms()
        keys = [k for k in accounts.keys_of(key.account_id)  # oldest first
                if not k.is_management and (include_disabled or not k.disabled)]
        return json_response({"data": [key_view(k, now) for k in keys[offset:offset + 100]]})

    async def create_key(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        body = decode(await request.body(limit), KeyCreate)
        secret, created = await accounts.create_key(
            accounts.of_key(key), name=body.name, is_management=False,
            limit=usd_to_nano(body.limit) if body.limit is not None else None, limit_reset=body.limit_reset,
            include_byok_in_limit=body.include_byok_in_limit, expires_at=expiry_ms(body.expires_at))
        return json_response({"data": key_view(created, now_ms()), "key": secret}, status=201)

    async def get_key(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        return json_response({"data": key_view(owned(key, request.path_params["hash"]), now_ms())})

    async def update_key(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        target = owned(key, request.path_params["hash"])
        patch = decode(await request.body(limit), KeyPatch)
        changes: dict[str, Any] = {}
        for name in ("name", "disabled", "include_byok_in_limit"):
            if getattr(patch, name) is not None:
                changes[name] = getattr(patch, name)
        if patch.limit is not msgspec.UNSET:
            changes["limit"] = usd_to_nano(patch.limit) if patch.limit is not None else None
        if patch.limit_reset is not msgspec.UNSET:
            changes["limit_reset"] = patch.limit_reset
        await accounts.update_key(target, changes)
        return json_response({"data": key_view(target, now_ms())})

    async def delete_key(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        target = owned(key, request.path_params["hash"])
        await accounts.update_key(target, {"deleted": True, "disabled": True})
        return json_response({"deleted": True})

    return [
        ("GET", "/key", current_key),
        ("GET", "/auth/key", current_key),
        ("GET", "/credits", credits),
        ("GET", "/keys", list_keys),
        ("POST", "/keys", create_key),
        ("GET", "/keys/{hash}", get_key),
        ("PATCH", "/keys/{hash}", update_key),
        ("DELETE", "/keys/{hash}", delete_key),
    ]
