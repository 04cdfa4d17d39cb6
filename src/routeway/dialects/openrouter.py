"""``openrouter``: OpenRouter itself (the default for the provider named ``openrouter``), which takes
OpenRouter's ``reasoning`` object as it is."""

from __future__ import annotations

from typing import Any

from routeway.catalog import Endpoint
from routeway.dialects.base import Dialect
from routeway.transform.reasoning import Wish
from routeway.wire.chat import ChatRequest


class OpenRouter(Dialect):
    name = "openrouter"

    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        fields = {"enabled": wish.enabled, "effort": wish.effort, "max_tokens": wish.budget,
                  "exclude": wish.exclude or None}
        body["reasoning"] = {k: v for k, v in fields.items() if v is not None}
        return True
