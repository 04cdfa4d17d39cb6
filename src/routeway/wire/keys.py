"""Key and credit answers (GET /key, /credits, /keys…) as types for the OpenAPI document.

Built as dicts by api/views.py ``key_view`` and api/keys.py; field names are OpenRouter's.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct

Reset = Literal["daily", "weekly", "monthly"]


class ApiKey(Struct):
    hash: str
    name: str
    label: str
    disabled: bool
    limit: float | None
    limit_remaining: float | None
    limit_reset: Reset | None
    include_byok_in_limit: bool
    usage: float
    usage_daily: float
    usage_weekly: float
    usage_monthly: float
    byok_usage: float
    byok_usage_daily: float
    byok_usage_weekly: float
    byok_usage_monthly: float
    is_management_key: bool
    last_used_at: str | None
    creator_user_id: str | None
    external_user: str | None
    workspace_id: str
    created_at: str
    updated_at: str | None
    expires_at: str | None


class RateLimit(Struct):
    requests: int
    interval: str
    note: str


class FreeModelDailyRequests(Struct):
    limit: int
    remaining: int
    used: int


class CurrentKey(ApiKey):
    """``GET /key``: the calling key, with the account's rate limits."""
    is_provisioning_key: bool
    organization_id: str | None
    # OpenRouter's GET /key gives a null workspace_id where its key list gives a string; a Struct redeclares it
    workspace_id: str | None  # type: ignore[assignment]
    allowed_data_regions: list[str]
    budgets: list[dict[str, Any]]
    effective_budget: dict[str, Any] | None
    rate_limit: RateLimit
    free_model_daily_requests: FreeModelDailyRequests
    is_free_tier: bool


class CurrentKeyResponse(Struct):
    data: CurrentKey


class KeyResponse(Struct):
    data: ApiKey


class KeyCreatedResponse(Struct):
    data: ApiKey
    key: str  # the secret, shown this once


class KeysListResponse(Struct):
    data: list[ApiKey]


class Credits(Struct):
    total_credits: float
    total_usage: float


class CreditsResponse(Struct):
    data: Credits
