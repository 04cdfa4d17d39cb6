"""The upstream request body for one endpoint: supported parameters pass, others are dropped and
reported; the endpoint's dialect (routeway/dialects/) writes reasoning, JSON mode and tools its way."""

from __future__ import annotations

from typing import Any

import msgspec

from routeway.catalog import Endpoint
from routeway.ledger.bound import output_tokens
from routeway.transform.reasoning import apply_reasoning
from routeway.transform.structured import wants_json
from routeway.wire.chat import ChatRequest

# request field -> the supported_parameters name that admits it
_PARAMETERS = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty", "repetition_penalty": "repetition_penalty", "min_p": "min_p",
    "top_a": "top_a", "seed": "seed", "stop": "stop", "logit_bias": "logit_bias", "logprobs": "logprobs",
    "top_logprobs": "top_logprobs", "tools": "tools",
    "tool_choice": "tool_choice", "parallel_tool_calls": "tools",
}
# what passes whatever a dialect's wire_parameters say: the dialect itself writes these its way
_ALWAYS = ("reasoning", "include_reasoning", "max_tokens", "structured_outputs")


def upstream_body(chat: ChatRequest, endpoint: Endpoint, stream: bool) -> tuple[dict[str, Any], list[str]]:
    dialect = endpoint.dialect_impl
    body: dict[str, Any] = {**endpoint.extra_body, "model": endpoint.upstream_model, "messages": chat.messages,
                            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    # always sent: the reservation assumed this many output tokens at most (ledger/bound.py)
    limit = output_tokens(chat.output_limit, endpoint)
    if chat.output_limit is None and endpoint.max_output is None and dialect.default_max_tokens is not None:
        limit = min(limit, dialect.default_max_tokens)
    body["max_tokens"] = limit
    supported = set(endpoint.supported_parameters)
    if dialect.renders_tools:
        supported.add("tools")  # routeway renders them into the prompt itself
    accepted = dialect.wire_parameters
    if accepted is not None:
        supported = {p for p in supported if p in accepted or p in _ALWAYS}
    dropped: list[str] = []
    for field, parameter in _PARAMETERS.items():
        value = getattr(chat, field)
        if value is None:
            continue
        if parameter in supported:
            body[field] = msgspec.to_builtins(value)
        else:
            dropped.append(field)
    dropped += apply_reasoning(body, chat, endpoint)
    fmt = chat.response_format
    if fmt is not None:
        if wants_json(fmt) and endpoint.takes_structured_output:
            dialect.response_format(body, fmt)
            if endpoint.provider.constrains_output and "response_format" not in body:
                body["response_format"] = msgspec.to_builtins(fmt)  # routeway's own engine: a grammar enforces it
        elif not wants_json(fmt) and "response_format" in supported:
            body["response_format"] = msgspec.to_builtins(fmt)
        else:
            dropped.append("response_format")
    dialect.render(body)
    return body, dropped


# what a chat body carries that /completions does not take: the prompt replaces the messages, and
# routeway's chat-only parameters stay behind (OpenAI's /completions refuses unknown fields)
_CHAT_ONLY = ("messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "reasoning",
              "include_reasoning", "logprobs", "top_logprobs", "structured_outputs")


def completion_body(chat_body: dict[str, Any], prompt: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The ``/completions`` body from the endpoint's chat body: ``prompt`` instead of ``messages``, plus the
    text completion fields of its own (``logprobs`` as a count, ``echo``, ``suffix``)."""
    body = {k: v for k, v in chat_body.items() if k not in _CHAT_ONLY}
    body["prompt"] = prompt
    body.update(fields)
    return body
