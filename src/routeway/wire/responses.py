"""The OpenAI Responses request (``POST /responses``) and answer, as OpenRouter serves them: stateless.

The request is validated for type and range in one msgspec decode, as chat's is (wire/chat.py); its
input items stay free-form here and are checked one by one where they are translated into chat messages
(api/responses.py). Unknown fields are ignored; a wrong type or range is a 400 naming the field. The
answer types below are for the OpenAPI document: field names follow ``openai.types.responses``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from routeway.wire.chat import MAX_MESSAGES, MAX_TOOLS, Effort, Penalty, PositiveInt, ProviderPreferences, Unit


class ResponsesReasoning(Struct, omit_defaults=True):
    effort: Effort | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None  # the older name of ``summary``
    # OpenRouter's additions, as in chat's ``reasoning``
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    exclude: bool | None = None
    enabled: bool | None = None


class TextFormat(Struct, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Meta(max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")] | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextOptions(Struct, omit_defaults=True):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(Struct, omit_defaults=True):
    model: str | None = None
    models: list[str] | None = None
    input: str | Annotated[list[dict[str, Any]], Meta(max_length=MAX_MESSAGES)] | None = None
    instructions: str | None = None
    tools: Annotated[list[dict[str, Any]], Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    reasoning: ResponsesReasoning | None = None
    max_output_tokens: PositiveInt | None = None
    include: list[str] | None = None
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    seed: int | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    provider: ProviderPreferences | None = None
    plugins: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    session_id: Annotated[str, Meta(max_length=256)] | None = None
    service_tier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    max_tool_calls: Annotated[int, Meta(ge=0)] | None = None
    prompt_cache_key: str | None = None


# ---- the answer, for the OpenAPI document ---------------------------------------------------------

class InputTokensDetails(Struct):
    cached_tokens: int


class OutputTokensDetails(Struct):
    reasoning_tokens: int


class ResponseUsage(Struct):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int
    cost: float


class ResponseError(Struct):
    code: str
    message: str


class IncompleteDetails(Struct):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponsesResult(Struct, forbid_unknown_fields=False):
    """A Response object (OpenRouter: OpenResponsesNonStreamingResponse)."""
    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "failed", "in_progress"]
    model: str
    output: list[dict[str, Any]]  # message, reasoning and function_call items (openai.types.responses)
    usage: ResponseUsage | None
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    store: bool
    provider: str | None = None


class StreamEvent(Struct, forbid_unknown_fields=False):
    """One event of a streamed response: ``type`` names it (response.created … response.completed)."""
    type: str
    sequence_number: int
