"""POST /chat/completions' non-streaming answer as a type for the OpenAPI document.

api/chat_render.py builds it from the exchange core's answer, normalized by transform/normalize.py, so
messages and choices keep whatever else the engine sent (extra fields are allowed); what routeway
guarantees is listed here, in OpenRouter's ``ChatResponse`` names.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct

from routeway.wire.errors import ErrorDetail
from routeway.wire.generation import ProviderResponse

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class AssistantMessage(Struct, forbid_unknown_fields=False):
    role: str
    content: str | list[dict[str, Any]] | None = None
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChoiceError(Struct, forbid_unknown_fields=False):
    code: int
    message: str
    metadata: dict[str, Any] | None = None


class ChatResponseChoice(Struct, forbid_unknown_fields=False):
    message: AssistantMessage
    finish_reason: FinishReason | None
    native_finish_reason: str | None
    index: int | None = None
    error: ChoiceError | None = None


class PromptTokensDetails(Struct, forbid_unknown_fields=False):
    cached_tokens: int  # read from the upstream's prompt cache, billed at the endpoint's input_cache_read
    audio_tokens: int
    cache_write_tokens: int = 0  # written into it, billed at input_cache_write


class CompletionTokensDetails(Struct, forbid_unknown_fields=False):
    reasoning_tokens: int
    image_tokens: int


class CostDetails(Struct, forbid_unknown_fields=False):
    upstream_inference_cost: float | None


class ChatGenerationTokenUsage(Struct, forbid_unknown_fields=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float  # USD
    is_byok: bool
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails
    cost_details: CostDetails


class OpenRouterMetadata(Struct):
    provider_responses: list[ProviderResponse]


class ChatResponse(Struct, forbid_unknown_fields=False):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    provider: str
    system_fingerprint: str | None
    choices: list[ChatResponseChoice]
    usage: ChatGenerationTokenUsage
    openrouter_metadata: OpenRouterMetadata | None = None


class ChatStreamingChoice(Struct, forbid_unknown_fields=False):
    delta: dict[str, Any]  # role, content, reasoning, reasoning_details, tool_calls: as in AssistantMessage
    finish_reason: FinishReason | None
    native_finish_reason: str | None
    index: int | None = None
    error: ChoiceError | None = None


class ChatStreamingResponseChunk(Struct, forbid_unknown_fields=False):
    """One event of a stream: deltas; after a failure, one with ``error`` and ``finish_reason: "error"``;
    last, one with empty ``choices`` and the ``usage``."""
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    provider: str | None
    choices: list[ChatStreamingChoice]
    usage: ChatGenerationTokenUsage | None = None
    error: ErrorDetail | None = None
    openrouter_metadata: OpenRouterMetadata | None = None
