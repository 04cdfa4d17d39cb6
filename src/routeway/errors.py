"""The one error type of routeway and its mapping to OpenRouter's error envelope.

Every failure a client can see is an ``APIError``: it carries the HTTP status, a message that says
what to do, and OpenRouter's typed ``metadata.error_type``. Handlers raise it; the ASGI layer turns it
into ``{"error": {"code", "message", "metadata"}}`` once.
"""

from __future__ import annotations

from typing import Any

_ERROR_TYPES = {
    400: "invalid_request",
    401: "authentication",
    402: "payment_required",
    403: "permission_denied",
    404: "not_found",
    405: "invalid_request",
    408: "timeout",
    413: "payload_too_large",
    422: "unprocessable",
    429: "rate_limit_exceeded",
    500: "server",
    502: "provider_unavailable",
    503: "provider_unavailable",
}
# Types that are not the default of their status.
STORE_UNAVAILABLE = "store_unavailable"  # 503: the store cannot write, so nothing that must be recorded is done


class APIError(Exception):
    __slots__ = ("status", "message", "metadata", "headers")

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.metadata = {"error_type": error_type or _ERROR_TYPES.get(status, "unmapped")}
        if metadata:
            self.metadata.update(metadata)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": self.message, "metadata": self.metadata}}


def store_unavailable(problem: str | None) -> APIError:
    """503 for work that must be recorded while the store cannot write (a full disk): nothing was done."""
    return APIError(
        503,
        f"routeway cannot record anything right now ({problem or 'the store cannot write'}), so it takes no paid"
        " requests, credit grants or key changes; nothing was done or charged. Retry in a few seconds; an"
        " operator should free space in routeway's data folder or bring its database back (routeway recovers by"
        " itself).",
        error_type=STORE_UNAVAILABLE, metadata={"store": problem}, headers={"Retry-After": "5"})
