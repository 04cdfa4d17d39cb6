"""The catalog's answers (GET /models, /models/{author}/{slug}/endpoints, /providers) as types.

The handlers build these answers as dicts (api/views.py); these Structs describe them for the OpenAPI
document (api/openapi.py), with OpenRouter's schema and field names. The schemathesis run checks that
every answer matches them.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct


class PublicPricing(Struct):
    """USD per token (per request for ``request``), as decimal strings."""
    prompt: str
    completion: str
    request: str
    image: str
    web_search: str
    internal_reasoning: str
    input_cache_read: str | None = None  # prompt tokens read from the upstream's prompt cache
    input_cache_write: str | None = None  # prompt tokens written into it


class ModelArchitecture(Struct):
    modality: str
    input_modalities: list[str]
    output_modalities: list[str]
    tokenizer: str
    instruct_type: str | None


class TopProviderInfo(Struct):
    context_length: int
    max_completion_tokens: int | None
    is_moderated: bool


class ModelLinks(Struct):
    details: str


class Model(Struct):
    id: str
    canonical_slug: str
    hugging_face_id: str
    name: str
    created: int
    description: str
    context_length: int
    architecture: ModelArchitecture
    pricing: PublicPricing
    top_provider: TopProviderInfo
    per_request_limits: dict[str, Any] | None
    supported_parameters: list[str]
    default_parameters: dict[str, Any] | None
    supported_voices: list[str] | None
    knowledge_cutoff: str | None
    links: ModelLinks
    endpoint_count: int


class PageLinks(Struct):
    next: str | None


class ModelsListResponse(Struct):
    data: list[Model]
    total_count: int
    links: PageLinks


class PercentileStats(Struct):
    p50: float
    p75: float
    p90: float
    p99: float


class PublicEndpoint(Struct):
    name: str
    model_name: str
    model_id: str
    context_length: int
    pricing: PublicPricing
    provider_name: str
    tag: str
    quantization: str | None
    max_completion_tokens: int | None
    max_prompt_tokens: int | None
    supported_parameters: list[str]
    status: Literal[0, -1, -2, -3, -5, -10]  # OpenRouter's EndpointStatus
    service_tier: str | None
    uptime_last_5m: float | None
    uptime_last_30m: float | None
    uptime_last_1d: float | None
    supports_implicit_caching: bool
    supports_diarization: bool
    supports_tool_choice: dict[str, bool]
    native_tools: dict[str, Any]
    latency_last_30m: PercentileStats | None
    throughput_last_30m: PercentileStats | None
    breaker_state: Literal["closed", "half_open", "open"]
    data_collection: Literal["allow", "deny"]
    zdr: bool


class ModelEndpoints(Struct):
    id: str
    name: str
    created: int
    description: str
    architecture: ModelArchitecture
    endpoints: list[PublicEndpoint]


class ListEndpointsResponse(Struct):
    data: ModelEndpoints


class Provider(Struct):
    name: str
    slug: str
    privacy_policy_url: str | None
    terms_of_service_url: str | None
    status_page_url: str | None


class ProvidersListResponse(Struct):
    data: list[Provider]


class ModelsCount(Struct):
    count: int


class ModelsCountResponse(Struct):
    data: ModelsCount
