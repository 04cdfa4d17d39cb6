"""Anthropic's Messages request (``POST /v1/messages``), validated for type and range in one msgspec decode,
with OpenRouter's additions (``models``, ``provider``, ``session_id``, ``user``, ``plugins``).

Content blocks stay free-form dicts here: api/messages_request.py reads each block by its ``type`` and
refuses what it cannot translate, naming the block. Unknown top-level fields are ignored, as Anthropic's own
(``cache_control``, ``context_management``, ``service_tier``…) have no routeway meaning; sizes are bounded as
for chat completions (wire/chat.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from routeway.errors import APIError
from routeway.wire.chat import MAX_DEPTH, MAX_MESSAGES, MAX_TOOLS, ProviderPreferences, _deeper_than
from routeway.wire.decode import decode

PositiveInt = Annotated[int, Meta(ge=1)]
MAX_STOP_SEQUENCES = 64


class Thinking(Struct, omit_defaults=True):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: Annotated[int, Meta(ge=1)] | None = None


class ToolChoice(Struct, omit_defaults=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Tool(Struct, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=128)]
    input_schema: dict[str, Any] | None = None
    description: str | None = None
    type: str | None = None  # "custom" or absent; Anthropic's server tools (web_search_…) are refused


class Metadata(Struct, omit_defaults=True):
    user_id: Annotated[str, Meta(max_length=256)] | None = None


class MessagesRequest(Struct, omit_defaults=True):
    model: str | None = None
    messages: Annotated[list[dict[str, Any]], Meta(max_length=MAX_MESSAGES)] | None = None
    max_tokens: PositiveInt | None = None
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: Annotated[list[str], Meta(max_length=MAX_STOP_SEQUENCES)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    thinking: Thinking | None = None
    tools: Annotated[list[Tool], Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    stream: bool = False
    # OpenRouter's additions
    models: list[str] | None = None
    provider: ProviderPreferences | None = None
    session_id: Annotated[str, Meta(max_length=256)] | None = None
    user: str | None = None
    plugins: list[dict[str, Any]] | None = None


class CountTokensRequest(Struct, omit_defaults=True):
    """``POST /v1/messages/count_tokens``: the same request without the generation settings."""

    model: str | None = None
    messages: Annotated[list[dict[str, Any]], Meta(max_length=MAX_MESSAGES)] | None = None
    system: str | list[dict[str, Any]] | None = None
    tools: Annotated[list[Tool], Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None


def parse_messages_request(body: bytes) -> MessagesRequest:
    request: MessagesRequest = decode(body, MessagesRequest)
    _check(request, body)
    if not request.model and not request.models:
        raise APIError(400, "Invalid request: `model` is required (e.g. \"anthropic/claude-sonnet-4\")",
                       metadata={"param": "model"})
    return request


def parse_count_tokens_request(body: bytes) -> CountTokensRequest:
    request: CountTokensRequest = decode(body, CountTokensRequest)
    _check(request, body)
    return request


def _check(request: MessagesRequest | CountTokensRequest, body: bytes) -> None:
    if not request.messages:
        raise APIError(400, "Invalid request: `messages` must contain at least one message",
                       metadata={"param": "messages"})
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:  # fewer brackets cannot nest deeper
        free: list[tuple[str, Any]] = [("messages", request.messages), ("system", request.system)]
        free += [(f"tools[{i}].input_schema", t.input_schema) for i, t in enumerate(request.tools or ())]
        for param, value in free:
            if isinstance(value, (list, dict)) and _deeper_than(value, 2, MAX_DEPTH):
                raise APIError(400, f"Invalid request: `{param}` nests arrays and objects beyond {MAX_DEPTH}"
                                    " levels of the request body", metadata={"param": param, "max_depth": MAX_DEPTH})


# ---- answers, for the OpenAPI document ------------------------------------------------------------
class MessagesUsage(Struct):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class MessagesResponse(Struct):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]  # text, thinking, redacted_thinking and tool_use blocks
    stop_reason: str | None
    stop_sequence: str | None
    usage: MessagesUsage


class MessagesStreamEvent(Struct, forbid_unknown_fields=False):
    """One SSE event's data (its ``event:`` line repeats ``type``): message_start, content_block_start,
    content_block_delta, content_block_stop, message_delta, message_stop, ping or error."""

    type: str


class CountTokensResponse(Struct):
    input_tokens: int


class AnthropicErrorDetail(Struct):
    type: str  # invalid_request_error, authentication_error, billing_error, permission_error, not_found_error,
    # request_too_large, rate_limit_error, timeout_error, api_error, overloaded_error
    message: str


class AnthropicError(Struct):
    """The error shape of the Messages routes (Anthropic's own, which Anthropic's clients parse)."""

    type: Literal["error"]
    error: AnthropicErrorDetail
