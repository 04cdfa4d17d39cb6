"""GET /activity's answer as a type for the OpenAPI document, in OpenRouter's ``ActivityItem`` names."""

from __future__ import annotations

from msgspec import Struct


class ActivityItem(Struct):
    date: str  # YYYY-MM-DD, UTC
    model: str
    model_permaslug: str
    endpoint_id: str  # routeway's: "<provider slug>/<model>"
    provider_name: str
    usage: float  # USD charged
    byok_usage_inference: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int


class ActivityResponse(Struct):
    data: list[ActivityItem]
