"""``anthropic``: the Messages API (only over a provider of kind ``anthropic``, whose adapter,
providers/anthropic.py, translates the OpenAI-shaped body and answer). Thinking is
``thinking.budget_tokens``: the client's budget or its effort's share of ``max_tokens``, at least 1024
and below ``max_tokens``, else dropped and reported. The wire takes temperature, top_p, top_k, stop and
tools; ``max_tokens`` is required, and above the model's own limit refused, so an endpoint without
``max_output`` gets 4096 when the client sets none. It has no ``response_format``: the adapter sends none."""

from __future__ import annotations

from typing import Any

from routeway.catalog import Endpoint
from routeway.dialects.base import Dialect
from routeway.transform.reasoning import Wish, budget_tokens
from routeway.wire.chat import ChatRequest

DEFAULT_MAX_TOKENS = 4096
MIN_BUDGET = 1024  # Anthropic's smallest thinking budget


class Anthropic(Dialect):
    name = "anthropic"
    wire_parameters = frozenset({"temperature", "top_p", "top_k", "stop", "tools", "tool_choice",
                                 "parallel_tool_calls"})
    default_max_tokens = DEFAULT_MAX_TOKENS

    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        output = body.get("max_tokens") or endpoint.max_output or DEFAULT_MAX_TOKENS  # as transform/request.py set it
        budget = budget_tokens(wish, output, floor=MIN_BUDGET)
        if wish.enabled and budget is not None and budget < output:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            body["max_tokens"] = output
        elif wish.enabled:
            return False  # Anthropic needs 1024 <= budget < max_tokens
        return True
