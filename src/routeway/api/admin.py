"""The operator's API (``Authorization: Bearer $ROUTEWAY_ADMIN_KEY``): accounts, credit grants,
an account's keys and its ledger. The ``routeway accounts`` and ``routeway keys`` commands call it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from msgspec import Meta, Struct

from routeway.api.auth import require_operator
from routeway.api.http import Request, Response, json_response
from routeway.api.keys import expiry_ms
from routeway.api.views import account_view, key_view
from routeway.errors import APIError
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import AccountState
from routeway.ledger.money import SignedUsdAmount, UsdAmount, nano_to_usd, usd_to_nano
from routeway.ledger.periods import iso
from routeway.store.ledger import LedgerEntry, LedgerRepository
from routeway.wire.decode import decode

if TYPE_CHECKING:
    from routeway.services import Services


class AccountCreate(Struct):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    credits: UsdAmount = 0.0


class CreditGrant(Struct):
    amount: SignedUsdAmount  # negative takes credits back (never below what is available)
    note: Annotated[str, Meta(max_length=500)] = ""


class AdminKeyCreate(Struct):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    management: bool = True
    limit: UsdAmount | None = None
    limit_reset: Literal["daily", "weekly", "monthly"] | None = None
    expires_at: str | None = None


class ResponseCacheSetting(Struct):
    """Whether every request of the account uses the response cache unless it says ``X-OpenRouter-Cache: false``."""

    enabled: bool
    ttl_seconds: Annotated[int, Meta(ge=1, le=86_400)] = 300


def routes(services: Services) -> list[tuple[str, str, Any]]:
    accounts = services.accounts
    ledger_rows = LedgerRepository(services.store)
    limit = services.settings.max_body_bytes

    def account_of(request: Request) -> AccountState:
        require_operator(services, request)
        account = accounts.get(request.path_params["account"])
        if account is None:
            raise APIError(404, f"No account {request.path_params['account']};"
                                " list them with GET /api/v1/admin/accounts.")
        return account

    async def create_account(request: Request) -> Response:
        require_operator(services, request)
        body = decode(await request.body(limit), AccountCreate)
        account = await accounts.create_account(body.name, usd_to_nano(body.credits))
        return json_response({"data": account_view(account)}, status=201)

    async def list_accounts(request: Request) -> Response:
        require_operator(services, request)
        return json_response({"data": [account_view(a) for a in accounts.all()]})

    async def get_account(request: Request) -> Response:
        return json_response({"data": account_view(account_of(request))})

    async def grant(request: Request) -> Response:
        account = account_of(request)
        body = decode(await request.body(limit), CreditGrant)
        try:
            entry = await accounts.grant(account, usd_to_nano(body.amount), body.note or "operator grant")
        except ValueError as exc:
            raise APIError(400, f"Invalid request: {exc}", metadata={"param": "amount"}) from None
        return json_response({"data": {"entry": _entry_view(entry), "account": account_view(account)}}, status=201)

    async def create_key(request: Request) -> Response:
        account = account_of(request)
        body = decode(await request.body(limit), AdminKeyCreate)
        secret, key = await accounts.create_key(
            account, name=body.name, is_management=body.management,
            limit=usd_to_nano(body.limit) if body.limit is not None else None, limit_reset=body.limit_reset,
            expires_at=expiry_ms(body.expires_at))
        return json_response({"data": key_view(key, now_ms()), "key": secret}, status=201)

    async def list_keys(request: Request) -> Response:
        account = account_of(request)
        now = now_ms()
        return json_response({"data": [key_view(k, now) for k in accounts.keys_of(account.id)]})

    async def ledger(request: Request) -> Response:
        account = account_of(request)
        entries = await ledger_rows.of_account(account.id)
        return json_response({"data": [_entry_view(entry) for entry in entries]})

    async def response_cache(request: Request) -> Response:
        account = account_of(request)
        body = decode(await request.body(limit), ResponseCacheSetting)
        await services.response_cache.set_account(account.id, body.ttl_seconds if body.enabled else None)
        return json_response({"data": {"account_id": account.id, "enabled": body.enabled,
                                       "ttl_seconds": body.ttl_seconds if body.enabled else None}})

    return [
        ("POST", "/admin/accounts", create_account),
        ("PUT", "/admin/accounts/{account}/response-cache", response_cache),
        ("GET", "/admin/accounts", list_accounts),
        ("GET", "/admin/accounts/{account}", get_account),
        ("POST", "/admin/accounts/{account}/credits", grant),
        ("POST", "/admin/accounts/{account}/keys", create_key),
        ("GET", "/admin/accounts/{account}/keys", list_keys),
        ("GET", "/admin/accounts/{account}/ledger", ledger),
    ]


def _entry_view(entry: LedgerEntry) -> dict[str, Any]:
    return {"id": entry.id, "account_id": entry.account_id, "key_hash": entry.key_hash, "kind": entry.kind,
            "amount": nano_to_usd(entry.amount_nano), "amount_nano": entry.amount_nano,
            "generation_id": entry.generation_id, "note": entry.note, "created_at": iso(entry.created_at)}
