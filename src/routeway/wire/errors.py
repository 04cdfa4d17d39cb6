"""The error envelope every failing answer carries, as a type for the OpenAPI document.

``routeway.errors.APIError.body()`` builds it; ``metadata.error_type`` is always there (OpenRouter's
vocabulary), ``param`` names an invalid field, and other keys add detail (``previous_errors``, ``raw``…).
"""

from __future__ import annotations

from msgspec import Struct


class ErrorMetadata(Struct, forbid_unknown_fields=False):
    error_type: str
    param: str | None = None


class ErrorDetail(Struct):
    code: int
    message: str
    metadata: ErrorMetadata


class ErrorResponse(Struct):
    error: ErrorDetail


class Deleted(Struct):
    deleted: bool

