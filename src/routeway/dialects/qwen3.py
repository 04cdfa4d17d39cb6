"""``qwen3``: Qwen3 hybrid models, whose chat template switches thinking with ``enable_thinking``."""

from __future__ import annotations

from typing import Any

from routeway.catalog import Endpoint
from routeway.dialects.base import Dialect, template_kwargs
from routeway.transform.reasoning import Wish
from routeway.wire.chat import ChatRequest


class Qwen3(Dialect):
    name = "qwen3"

    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        template_kwargs(body)["enable_thinking"] = wish.enabled
        return True
