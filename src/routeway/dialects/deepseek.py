"""``deepseek``: DeepSeek V3.1 hybrids on vLLM / SGLang, whose chat template switches thinking with
``thinking``; their reasoning comes back as ``reasoning_content`` (made ``reasoning`` for every dialect)."""

from __future__ import annotations

from typing import Any

from routeway.catalog import Endpoint
from routeway.dialects.base import Dialect, template_kwargs
from routeway.transform.reasoning import Wish
from routeway.wire.chat import ChatRequest


class DeepSeek(Dialect):
    name = "deepseek"

    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        template_kwargs(body)["thinking"] = wish.enabled
        return True
