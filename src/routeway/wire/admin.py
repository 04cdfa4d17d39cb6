"""The operator API's answers (/admin/…) as types for the OpenAPI document (built by api/views.py
``account_view`` and api/admin.py ``_entry_view``). Amounts in USD, with the exact nano-USD beside them
in the ledger."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from routeway.wire.keys import ApiKey


class Account(Struct):
    id: str
    name: str
    created_at: str
    total_credits: float
    total_usage: float
    balance: float
    reserved: float


class AccountResponse(Struct):
    data: Account


class AccountsListResponse(Struct):
    data: list[Account]


class LedgerEntry(Struct):
    id: str
    account_id: str
    key_hash: str | None
    kind: Literal["grant", "revoke", "charge"]
    amount: float
    amount_nano: int
    generation_id: str | None
    note: str
    created_at: str


class LedgerResponse(Struct):
    data: list[LedgerEntry]


class Grant(Struct):
    entry: LedgerEntry
    account: Account


class GrantResponse(Struct):
    data: Grant


class AdminKeysListResponse(Struct):
    data: list[ApiKey]


class ResponseCacheSetting(Struct):
    account_id: str
    enabled: bool
    ttl_seconds: int | None


class ResponseCacheSettingResponse(Struct):
    data: ResponseCacheSetting
