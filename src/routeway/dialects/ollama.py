"""``ollama``: Ollama's OpenAI API. Thinking is ``think``: the effort's name for low / medium / high, else
true or false; its wire has no ``top_k``, ``min_p``, ``repetition_penalty`` (dropped and reported)."""

from __future__ import annotations

from typing import Any

from routeway.catalog import Endpoint
from routeway.dialects.base import Dialect
from routeway.transform.reasoning import Wish, effort_of
from routeway.wire.chat import ChatRequest


class Ollama(Dialect):
    name = "ollama"
    wire_parameters = frozenset({"temperature", "top_p", "frequency_penalty", "presence_penalty", "seed", "stop",
                                 "tools", "tool_choice", "response_format", "logprobs", "top_logprobs"})

    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        effort = effort_of(wish, chat.output_limit)
        body["think"] = effort if wish.enabled and effort in ("low", "medium", "high") else wish.enabled
        return True
