"""GET /generation's answer as a type for the OpenAPI document (built by api/views.py
``generation_view`` from the stored record; field names are OpenRouter's, plus routeway's
``provider_responses``, ``usage_estimated``, ``usage_capped``, ``usage_rejected``, ``api``, ``status``, ``error``,
``cache_hit`` and ``cache_savings``)."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct


class ProviderResponse(Struct, forbid_unknown_fields=False):
    """One upstream attempt: which provider and model, its status, and why it failed."""
    provider: str
    model: str
    status: int | None
    error: str | None = None
    ms: int | None = None
    dropped_parameters: list[str] | None = None


class Generation(Struct):
    id: str
    upstream_id: str | None
    total_cost: float
    usage: float
    cache_discount: float | None
    upstream_inference_cost: float | None
    is_byok: bool
    created_at: str
    model: str
    app_id: int | None
    http_referer: str | None
    app_title: str | None
    streamed: bool | None
    cancelled: bool | None
    provider_name: str | None
    provider_slug: str | None
    upstream_model: str | None
    latency: int | None
    moderation_latency: int | None
    generation_time: int | None
    finish_reason: str | None
    native_finish_reason: str | None
    tokens_prompt: int | None
    tokens_completion: int | None
    native_tokens_prompt: int | None
    native_tokens_completion: int | None
    native_tokens_completion_images: int | None
    native_tokens_reasoning: int | None
    native_tokens_cached: int | None
    num_media_prompt: int | None
    num_media_completion: int | None
    num_input_audio_prompt: int | None
    num_search_results: int | None
    origin: str
    api_type: Literal["completions", "embeddings"] | None
    usage_estimated: bool
    usage_capped: bool  # the upstream claimed more tokens than the request could produce: billed at the bound
    usage_rejected: str | None  # why the upstream's usage was malformed (negative, not_integer, not_object)
    api: Literal["chat", "messages", "responses", "completions", "embeddings"]  # the inbound API it came in by
    cache_hit: bool  # answered from the response cache: free, no upstream call
    cache_savings: float  # USD: what the cached answer cost when it was made
    status: int | None
    error: str | None
    provider_responses: list[ProviderResponse]
    api_key_hash: str
    data_region: str
    external_user: str | None
    preset_id: str | None
    router: str | None
    service_tier: str | None
    user_agent: str | None
    web_search_engine: str | None
    workspace_id: str | None
    num_fetches: int | None


class GenerationResponse(Struct):
    data: Generation


