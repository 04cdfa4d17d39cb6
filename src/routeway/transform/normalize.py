"""Finish reasons, reasoning field names and usage, normalized to OpenRouter's response shape."""

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


class UsageCounts:
    """Token counts from the upstream's usage object, or estimated when it sent none."""

    __slots__ = ("prompt", "completion", "reasoning", "cached", "estimated", "native")

    def __init__(self, prompt: int = 0, completion: int = 0, reasoning: int = 0, cached: int = 0,
                 estimated: bool = False, native: dict[str, Any] | None = None) -> None:
        self.prompt = prompt
        self.completion = completion
        self.reasoning = reasoning
        self.cached = cached
        self.estimated = estimated
        self.native = native

    @classmethod
    def from_upstream(cls, usage: dict[str, Any]) -> UsageCounts:
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt=int(usage.get("prompt_tokens") or 0),
            completion=int(usage.get("completion_tokens") or 0),
            reasoning=int(completion_details.get("reasoning_tokens") or 0),
            cached=int(prompt_details.get("cached_tokens") or 0),
            native=usage,
        )

    def to_wire(self, cost_usd: float) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "cost": cost_usd,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning, "image_tokens": 0},
            "cost_details": {"upstream_inference_cost": None},
        }
