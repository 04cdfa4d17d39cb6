"""``hermes-prompt``: raw Hermes as ``hermes``, on engines that take no template kwargs: thinking is
switched on with the Hermes "deep thinking" system prompt (and off by leaving it out)."""

from __future__ import annotations

from typing import Any

from routeway.catalog import Endpoint
from routeway.dialects.base import with_system_prompt
from routeway.dialects.hermes import Hermes
from routeway.transform.reasoning import Wish
from routeway.wire.chat import ChatRequest

THINKING_PROMPT = (
    "You are a deep thinking AI, you may use extremely long chains of thought to deeply consider the problem and "
    "deliberate with yourself via systematic reasoning processes to help come to a correct solution prior to "
    "answering. You should enclose your thoughts and internal monologue inside <think> </think> tags, and then "
    "provide your solution or response to the problem."
)


class HermesPrompt(Hermes):
    name = "hermes-prompt"

    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        if wish.enabled:
            body["messages"] = with_system_prompt(body["messages"], THINKING_PROMPT)
        return True
