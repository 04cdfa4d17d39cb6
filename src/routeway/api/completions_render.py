"""Text completions on the wire: the chat renderer (api/chat_render.py) with OpenAI's ``text_completion``
shape — each choice's ``text`` instead of its ``delta`` or ``message``. The status line, keepalives, the
closing error / held / usage chunks and ``[DONE]`` are the chat renderer's."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, ClassVar

from routeway.api import sse
from routeway.api.chat_render import ChatCompletions, _usage
from routeway.exchange.events import Answer, Delta, Outcome


class TextCompletions(ChatCompletions):
    __slots__ = ()
    CHUNK_OBJECT = "text_completion"
    FAILED_CHOICE: ClassVar[dict[str, Any]] = {"index": 0, "text": "", "logprobs": None, "finish_reason": "error",
                                               "native_finish_reason": None}

    def begin(self, model: str, provider: str) -> None:
        self.chunk = {"id": self.generation_id, "object": self.CHUNK_OBJECT, "created": int(time.time()),
                      "model": model, "provider": provider, "choices": self.choices}

    def deltas(self, deltas: list[Delta]) -> Awaitable[None]:
        choices = self.choices
        choices.clear()
        for delta in deltas:
            choices.append(_choice(delta.choice, delta.text, delta.finish, delta.native_finish, delta.error))
        return self.request.send({"type": "http.response.body", "body": sse.event(self.chunk), "more_body": True})

    def _whole(self, outcome: Outcome, answer: Answer) -> dict[str, Any]:
        choices = [_choice(c.choice, c.message.get("content"), c.finish, c.native_finish, c.error)
                   for c in answer.choices]
        payload = {"id": outcome.id, "object": "text_completion", "created": int(time.time()),
                   "model": outcome.model, "provider": outcome.provider,
                   "system_fingerprint": answer.system_fingerprint, "choices": choices, "usage": _usage(outcome)}
        return payload


def _choice(upstream: dict[str, Any], text: Any, finish: str | None, native: str | None,
            error: dict[str, Any] | None) -> dict[str, Any]:
    """The upstream's choice (its ``logprobs`` and any field routeway does not read) with ``text``."""
    upstream.pop("delta", None)
    upstream.pop("message", None)
    upstream["text"] = text if isinstance(text, str) else ""
    upstream.setdefault("logprobs", None)
    upstream["finish_reason"], upstream["native_finish_reason"] = finish, native
    if error is not None:
        upstream["error"] = error
    return upstream
