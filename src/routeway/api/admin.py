"""The operator's API (``Authorization: Bearer $ROUTEWAY_ADMIN_KEY``): accounts, credit grants,
an account's keys and its ledger. The ``routeway accounts`` and ``routeway keys`` commands call it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from msgspec import Meta, Struct

from routeway.api.auth import require_operator
from routeway.api.http import Request, Response, json_response
from routeway.api.keys import decode, expiry_ms
from routeway.api.views import account_view, key_view
from routeway.errors import APIError
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import AccountState
from routeway.ledger.money import SignedUsdAmount, UsdAmount, nano_to_usd, usd_to_nano
from routeway.ledger.periods import iso

if TYPE_CHECKING:
    from routeway.app import Services


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


def routes(services: Services) -> list[tuple[str, str, Any]]:
    book = services.book
    accounts = services.accounts
    limit = services.settings.max_body_bytes

    def account_of(request: Request) -> AccountState:
        require_operator(services, request)
        account = book.accounts.get(request.path_params["account"])
        if account is None:
            raise APIError(404, f"No account {request.path_params['account']}; list them with GET /api/v1/admin/accounts.")
        return account

    async def create_account(request: Request) -> Response:
        require_operator(services, request)
        body = decode(await request.body(limit), AccountCreate)
        account = await accounts.create_account(body.name, usd_to_nano(body.credits))
        return json_response({"data": account_view(account)}, status=201)

    async def list_accounts(request: Request) -> Response:
        require_operator(services, request)
        return json_response({"data": [account_view(a) for a in book.accounts.values()]})

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
        keys = [k for k in book.keys.values() if k.account_id == account.id and not k.deleted]
        return json_response({"data": [key_view(k, now) for k in keys]})

    async def ledger(request: Request) -> Response:
        account = account_of(request)
        rows = await services.store.fetch(
            "SELECT id, account_id, key_hash, kind, amount_nano, generation_id, note, created_at FROM ledger"
            " WHERE account_id = ? ORDER BY created_at, id", (account.id,))
        names = ("id", "account_id", "key_hash", "kind", "amount_nano", "generation_id", "note", "created_at")
        return json_response({"data": [_entry_view(dict(zip(names, row))) for row in rows]})

    return [
        ("POST", "/admin/accounts", create_account),
        ("GET", "/admin/accounts", list_accounts),
        ("GET", "/admin/accounts/{account}", get_account),
        ("POST", "/admin/accounts/{account}/credits", grant),
        ("POST", "/admin/accounts/{account}/keys", create_key),
        ("GET", "/admin/accounts/{account}/keys", list_keys),
        ("GET", "/admin/accounts/{account}/ledger", ledger),
    ]


def _entry_view(entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry["id"], "account_id": entry["account_id"], "key_hash": entry.get("key_hash"),
            "kind": entry["kind"], "amount": nano_to_usd(entry["amount_nano"]), "amount_nano": entry["amount_nano"],
            "generation_id": entry.get("generation_id"), "note": entry["note"], "created_at": iso(entry["created_at"])}
