"""``openai``: OpenAI itself and engines whose reasoning and tool parsers give OpenAI's shape (vLLM and
SGLang with parsers, TGI, LM Studio). The default dialect. Reasoning is ``reasoning_effort``: a budget
becomes the effort whose share of ``max_tokens`` it reaches, ``max`` is ``xhigh``, off is ``none``."""

from __future__ import annotations

from typing import Any

from routeway.catalog import Endpoint
from routeway.dialects.base import Dialect
from routeway.transform.reasoning import Wish, effort_of
from routeway.wire.chat import ChatRequest


class OpenAI(Dialect):
    name = "openai"

    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        body["reasoning_effort"] = effort_of(wish, chat.output_limit) if wish.enabled else "none"
        return True
