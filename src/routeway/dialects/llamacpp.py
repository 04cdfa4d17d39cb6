"""``llamacpp``: llama.cpp's server and llama-cpp-python. Thinking is the template's ``enable_thinking``,
with ``reasoning_format: "deepseek"`` so the server returns it apart as ``reasoning_content``; a JSON
Schema goes in its grammar form, ``{"type": "json_object", "schema": …}``."""

from __future__ import annotations

from typing import Any

from routeway.catalog import Endpoint
from routeway.dialects.base import Dialect, template_kwargs
from routeway.transform.reasoning import Wish
from routeway.transform.structured import schema_of
from routeway.wire.chat import ChatRequest, ResponseFormat


class LlamaCpp(Dialect):
    name = "llamacpp"

    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        template_kwargs(body)["enable_thinking"] = wish.enabled
        body["reasoning_format"] = "deepseek"
        return True

    def response_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        schema = schema_of(fmt)
        body["response_format"] = {"type": "json_object", **({"schema": schema} if schema is not None else {})}
