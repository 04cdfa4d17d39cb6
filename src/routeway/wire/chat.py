"""The chat completions request, validated for type and range in one msgspec decode.

Field names, ranges and defaults follow OpenRouter's parameter docs. Unknown fields are ignored
(lenient input); a wrong type or range is a 400 naming the field (msgspec's ``at `$.field```).

Integer fields take integral floats (``top_logprobs: 0.0``, ``max_tokens: 1e3``), as JSON Schema's
``integer`` and OpenRouter do; ``0.5`` stays a 400. Only a body the strict decode refuses for that
reason is decoded a second time, so requests with plain integers pay nothing for it.

Sizes are bounded beyond the body's byte cap: at most ``MAX_MESSAGES`` messages and ``MAX_TOOLS`` tools,
and JSON nested at most ``MAX_DEPTH`` levels (free-form values such as message content and schemas
travel on to code that recurses: encoders, JSON Schema, token counting).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from routeway.errors import APIError
from routeway.wire.decode import REFUSALS, refusal

Effort = Literal["max", "xhigh", "high", "medium", "low", "minimal", "none"]
Unit = Annotated[float, Meta(ge=0, le=1)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
PositiveInt = Annotated[int, Meta(ge=1)]

MAX_MESSAGES = 10_000  # a long agent conversation has hundreds; the body cap allows ~100,000 tiny ones
MAX_TOOLS = 512  # above any upstream's own limit that we know of (OpenAI: 128)
MAX_DEPTH = 64  # levels of arrays and objects in the request body, the body itself being level 1


class Reasoning(Struct, omit_defaults=True):
    effort: Effort | None = None
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    exclude: bool | None = None
    enabled: bool | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class MaxPrice(Struct, omit_defaults=True):
    prompt: Annotated[float, Meta(ge=0)] | None = None
    completion: Annotated[float, Meta(ge=0)] | None = None
    request: Annotated[float, Meta(ge=0)] | None = None
    image: Annotated[float, Meta(ge=0)] | None = None


class SortConfig(Struct, omit_defaults=True):
    by: Literal["price", "throughput", "latency", "exacto"]
    partition: Literal["model", "none"] | None = None


class ProviderPreferences(Struct, omit_defaults=True):
    order: list[str] | None = None
    allow_fallbacks: bool | None = None
    require_parameters: bool | None = None
    data_collection: Literal["allow", "deny"] | None = None
    zdr: bool | None = None
    only: list[str] | None = None
    ignore: list[str] | None = None
    quantizations: list[str] | None = None
    sort: Literal["price", "throughput", "latency", "exacto"] | SortConfig | None = None
    max_price: MaxPrice | None = None
    preferred_max_latency: float | dict[str, float] | None = None
    preferred_min_throughput: float | dict[str, float] | None = None


class JSONSchemaConfig(Struct, omit_defaults=True):
    name: Annotated[str, Meta(max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(Struct, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema", "grammar", "python"]
    json_schema: JSONSchemaConfig | None = None
    grammar: str | None = None


class FunctionSpec(Struct, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Struct, omit_defaults=True):
    type: Literal["function"]
    function: FunctionSpec


class StreamOptions(Struct, omit_defaults=True):
    include_usage: bool | None = None


class UsageOption(Struct, omit_defaults=True):
    include: bool | None = None


ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class SamplingParameters(Struct, omit_defaults=True):
    """The sampling parameters chat and text completions both take, with the same bounds."""

    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    repetition_penalty: Annotated[float, Meta(gt=0, le=2)] | None = None
    min_p: Unit | None = None
    top_a: Unit | None = None
    seed: int | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    logit_bias: dict[str, Annotated[float, Meta(ge=-100, le=100)]] | None = None


class ChatRequest(SamplingParameters, omit_defaults=True):
    model: str | None = None
    messages: Annotated[list[dict[str, Any]], Meta(max_length=MAX_MESSAGES)] | None = None
    prompt: str | None = None
    models: list[str] | None = None
    provider: ProviderPreferences | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    usage: UsageOption | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    response_format: ResponseFormat | None = None
    structured_outputs: bool | None = None
    tools: Annotated[list[Tool], Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None
    reasoning_effort: Effort | None = None
    include_reasoning: bool | None = None
    user: str | None = None
    session_id: Annotated[str, Meta(max_length=256)] | None = None
    transforms: list[str] | None = None
    plugins: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    verbosity: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    service_tier: str | None = None

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


_decoder = msgspec.json.Decoder(ChatRequest)
INTEGER_FIELDS = (("max_tokens",), ("max_completion_tokens",), ("top_k",), ("seed",), ("top_logprobs",),
                  ("reasoning", "max_tokens"))
_FLOAT_FOR_INT = ("Expected `int | null`, got `float`", "Expected `int`, got `float`")


def parse_chat_request(body: bytes) -> ChatRequest:
    try:
        try:
            chat = _decoder.decode(body)
        except msgspec.ValidationError as exc:
            if not str(exc).startswith(_FLOAT_FOR_INT):
                raise
            chat = _decoder.decode(_integral_floats_as_ints(body))  # still refuses 0.5, naming the field
    except REFUSALS as exc:
        raise refusal(exc) from None
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:  # fewer brackets cannot nest deeper (bench step 27)
        _check_depth(chat)
    _check_messages(chat)
    if not chat.model and not chat.models:
        raise APIError(400, "Invalid request: `model` is required (e.g. \"nousresearch/hermes-4-70b\")",
                       metadata={"param": "model"})
    if chat.top_logprobs is not None and not chat.logprobs:
        raise APIError(400, "Invalid request: `top_logprobs` requires `logprobs: true`",
                       metadata={"param": "top_logprobs"})
    if (chat.reasoning and chat.reasoning_effort and chat.reasoning.effort
            and chat.reasoning.effort != chat.reasoning_effort):
        raise APIError(400, "Invalid request: `reasoning_effort` conflicts with `reasoning.effort`",
                       metadata={"param": "reasoning_effort"})
    return chat


def _integral_floats_as_ints(body: bytes) -> bytes:
    """The body with each integer field that holds a whole float (``2.0``) holding the integer instead."""
    raw = msgspec.json.decode(body)
    for path in INTEGER_FIELDS:
        parent = raw
        for name in path[:-1]:
            parent = parent.get(name) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            value = parent.get(path[-1])
            if isinstance(value, float) and value.is_integer():
                parent[path[-1]] = int(value)
    return msgspec.json.encode(raw)


def _check_messages(chat: ChatRequest) -> None:
    if chat.messages is None:
        if chat.prompt is None:
            raise APIError(400, "Invalid request: `messages` is required (a non-empty array)",
                           metadata={"param": "messages"})
        chat.messages = [{"role": "user", "content": chat.prompt}]
        return
    if not chat.messages:
        raise APIError(400, "Invalid request: `messages` must contain at least one message",
                       metadata={"param": "messages"})
    for i, message in enumerate(chat.messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if role not in ROLES:
            raise APIError(400, f"Invalid request: `{where}.role` must be one of"
                                f" {', '.join(sorted(ROLES))}, not {role!r}", metadata={"param": f"{where}.role"})
        content = message.get("content")
        if content is None:
            if role == "assistant" and (message.get("tool_calls") or "content" in message):
                continue
            raise APIError(400, f"Invalid request: `{where}.content` is required",
                           metadata={"param": f"{where}.content"})
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise APIError(400, f"Invalid request: `{where}.content[{j}]` must be an object with a `type`",
                                   metadata={"param": f"{where}.content[{j}]"})
                if "cache_control" in part:
                    _check_cache_control(part["cache_control"], f"{where}.content[{j}].cache_control")
        elif not isinstance(content, str):
            raise APIError(400, f"Invalid request: `{where}.content` must be a string or an array of content parts",
                           metadata={"param": f"{where}.content"})
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise APIError(400, f"Invalid request: `{where}.tool_call_id` is required for tool messages",
                           metadata={"param": f"{where}.tool_call_id"})


CACHE_TTLS = ("5m", "1h")


def _check_cache_control(value: Any, where: str) -> None:
    """OpenRouter's ``ChatMessageContentItemCacheControl``: ``{"type": "ephemeral", "ttl"?: "5m" | "1h"}``,
    an upstream prompt-cache breakpoint (providers/anthropic.py passes it on)."""
    if (not isinstance(value, dict) or value.get("type") != "ephemeral" or set(value) - {"type", "ttl"}
            or ("ttl" in value and value["ttl"] not in CACHE_TTLS)):
        raise APIError(400, f"Invalid request: `{where}` must be {{\"type\": \"ephemeral\"}} with an optional"
                            f" `ttl` of {' or '.join(repr(t) for t in CACHE_TTLS)}", metadata={"param": where})


def _check_depth(chat: ChatRequest) -> None:
    """The typed fields have a fixed depth; the free-form ones are walked (no recursion, early exit)."""
    free: list[tuple[str, Any, int]] = [("messages", chat.messages, 2), ("tool_choice", chat.tool_choice, 2),
                                        ("plugins", chat.plugins, 2)]
    for i, tool in enumerate(chat.tools or ()):
        free.append((f"tools[{i}].function.parameters", tool.function.parameters, 5))
    if chat.response_format is not None and chat.response_format.json_schema is not None:
        free.append(("response_format.json_schema.schema", chat.response_format.json_schema.schema, 4))
    for param, value, depth in free:
        if value is not None and _deeper_than(value, depth, MAX_DEPTH):
            raise APIError(400, f"Invalid request: `{param}` nests arrays and objects beyond {MAX_DEPTH} levels"
                                " of the request body", metadata={"param": param, "max_depth": MAX_DEPTH})


def _deeper_than(value: Any, depth: int, limit: int) -> bool:
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return False
