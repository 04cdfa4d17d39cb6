"""The upstream request body for one endpoint: supported parameters pass, others are dropped and
reported. Dialect-specific translation (reasoning, tools prompts) builds on this."""

from __future__ import annotations

from typing import Any

import msgspec

from routeway.catalog import Endpoint
from routeway.ledger.bound import output_tokens
from routeway.transform.raw_hermes import RAW_DIALECTS, prepare_request
from routeway.transform.reasoning import apply_reasoning
from routeway.transform.structured import apply_response_format, supports_structured, wants_json
from routeway.wire.chat import ChatRequest

# request field -> the supported_parameters name that admits it
_PARAMETERS = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty", "repetition_penalty": "repetition_penalty", "min_p": "min_p",
    "top_a": "top_a", "seed": "seed", "stop": "stop", "logit_bias": "logit_bias", "logprobs": "logprobs",
    "top_logprobs": "top_logprobs", "tools": "tools",
    "tool_choice": "tool_choice", "parallel_tool_calls": "tools",
}


# What each dialect's wire takes beyond messages; the rest is dropped (and reported) even when the
# endpoint's supported_parameters list it.
_DIALECT_PARAMETERS = {
    "anthropic": {"temperature", "top_p", "top_k", "stop", "tools", "tool_choice", "parallel_tool_calls"},
    "ollama": {"temperature", "top_p", "frequency_penalty", "presence_penalty", "seed", "stop", "tools", "tool_choice",
               "response_format", "logprobs", "top_logprobs"},
}

# Anthropic refuses a max_tokens above the model's own output limit, which an endpoint without
# max_output does not know: it gets this (below the bound the reservation assumed) when the client sets none.
_UNKNOWN_OUTPUT_LIMIT = {"anthropic": 4096}


def upstream_body(chat: ChatRequest, endpoint: Endpoint, stream: bool) -> tuple[dict[str, Any], list[str]]:
    body: dict[str, Any] = {**endpoint.extra_body, "model": endpoint.upstream_model, "messages": chat.messages,
                            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    # always sent: the reservation assumed this many output tokens at most (ledger/bound.py)
    limit = output_tokens(chat.output_limit, endpoint)
    if chat.output_limit is None and endpoint.max_output is None:
        limit = min(limit, _UNKNOWN_OUTPUT_LIMIT.get(endpoint.dialect or "", limit))
    body["max_tokens"] = limit
    supported = set(endpoint.supported_parameters)
    raw = endpoint.dialect in RAW_DIALECTS
    if raw:
        supported.add("tools")  # routeway renders them into the prompt itself
    accepted = _DIALECT_PARAMETERS.get(endpoint.dialect or "")
    if accepted is not None:
        supported = {p for p in supported if p in accepted or p in ("reasoning", "include_reasoning", "max_tokens",
                                                                     "structured_outputs")}
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
        if wants_json(fmt) and supports_structured(endpoint):
            apply_response_format(body, chat, endpoint)
        elif not wants_json(fmt) and "response_format" in supported:
            body["response_format"] = msgspec.to_builtins(fmt)
        else:
            dropped.append("response_format")
    if raw:
        prepare_request(body, body.get("tools"), body.get("tool_choice"))
    return body, dropped
