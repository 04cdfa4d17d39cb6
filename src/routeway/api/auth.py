"""Who is calling: API keys (inference), management keys (key administration), the operator key."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from routeway.errors import APIError
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import KeyState
from routeway.ledger.periods import iso

if TYPE_CHECKING:
    from routeway.api.http import Request
    from routeway.services import Services

_HINT = "Send 'Authorization: Bearer <key>'; an operator creates accounts and keys with `routeway accounts create`."


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(services: Services, request: Request, *, management: bool | None = None,
                 token: str | None = None) -> KeyState:
    """``token`` is the key an inbound API found its own way (api/messages.py: ``x-api-key``); else the bearer."""
    token = token or bearer(request)
    if token is None:
        raise APIError(401, f"Missing API key. {_HINT}", error_type="authentication")
    key = services.accounts.find_key(token)
    if key is None:
        raise APIError(401, f"Invalid API key. {_HINT}", error_type="authentication")
    if key.disabled:
        raise APIError(401, "This API key is disabled; re-enable it with PATCH /api/v1/keys/{hash} or use another key.",
                       error_type="authentication")
    if key.expires_at is not None and key.expires_at <= now_ms():
        raise APIError(401, f"This API key expired at {iso(key.expires_at)}; create a new one.",
                       error_type="authentication")
    if management is True and not key.is_management:
        raise APIError(403, "This endpoint needs a management key; an operator issues one with `routeway keys create"
                       " --management`.", error_type="permission_denied")
    if management is False and key.is_management:
        raise APIError(403, "Management keys cannot call inference; create an API key with POST /api/v1/keys.",
                       error_type="permission_denied")
    return key


def require_operator(services: Services, request: Request) -> None:
    expected = services.settings.admin_key
    token = bearer(request)
    if not expected:
        raise APIError(401, "The admin API is off: set ROUTEWAY_ADMIN_KEY before starting routeway.",
                       error_type="authentication")
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise APIError(401, "Invalid operator key (ROUTEWAY_ADMIN_KEY).", error_type="authentication")
