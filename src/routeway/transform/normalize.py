"""Finish reasons and reasoning field names, normalized to OpenRouter's response shape (usage: transform/usage.py)."""

from __future__ import annotations

from typing import Any

_FINISH = {
    "stop": "stop", "eos": "stop", "end_turn": "stop", "stop_sequence": "stop", "eos_token": "stop",
    "length": "length", "max_tokens": "length", "model_length": "length",
    "tool_calls": "tool_calls", "function_call": "tool_calls", "tool_use": "tool_calls",
    "content_filter": "content_filter", "safety": "content_filter", "refusal": "content_filter",
    "error": "error",
}


def finish_reason(native: str | None) -> str | None:
    if native is None:
        return None
    return _FINISH.get(native, "stop" if native else None)


def normalize_message(message: dict[str, Any]) -> None:
    """Move the engines' reasoning fields (``reasoning_content`` from SGLang/llama.cpp/DeepSeek,
    ``thinking`` from Ollama) to ``reasoning``, in place; works for messages and stream deltas."""
    for alias in ("reasoning_content", "thinking"):
        if alias in message:
            value = message.pop(alias)
            if value is not None and message.get("reasoning") is None:
                message["reasoning"] = value


def assistant_message(texts: list[str], reasoning: list[str], details: list[dict[str, Any]],
                      calls: list[dict[str, Any]]) -> dict[str, Any]:
    """A chat assistant message from the parts an Anthropic message's content blocks sort into (an upstream's
    answer, a client's past turn): ``reasoning``, ``reasoning_details`` and ``tool_calls`` only when not empty."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    if details:
        message["reasoning_details"] = details
    if calls:
        message["tool_calls"] = calls
    return message
