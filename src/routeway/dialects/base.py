"""The dialect interface: what the request side and the answer side ask of a dialect.

A dialect is one shared object per name (registry.py) and holds no per-request state: a request's
streaming state lives on the splitter it makes. Subclasses set the class attributes and override what
differs; the defaults are the OpenAI wire's native forms.

Request side (transform/request.py, transform/reasoning.py, transform/structured.py, and the endpoint's
capabilities that routing reads): which parameters the wire carries (``wire_parameters``), whether
routeway writes tools or JSON mode into the prompt (``renders_tools``, ``prompts_json``), ``max_tokens``
when nothing bounds the output (``default_max_tokens``), the reasoning switch (``reasoning``), the form of
``response_format`` (``response_format``) and a last rewrite of the body (``render``).
Answer side (transform/answers.py, asked by the exchange core): a splitter for engines that send raw text
(``splitter``), and the finish reason normalized (``finish_reason``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from routeway.transform.normalize import finish_reason

if TYPE_CHECKING:
    from routeway.catalog import Endpoint
    from routeway.transform.answers import AnswerSplitter
    from routeway.transform.reasoning import Wish
    from routeway.wire.chat import ChatRequest, ResponseFormat

STRUCTURED = frozenset({"response_format", "structured_outputs"})


class Dialect(ABC):
    name: ClassVar[str]
    # The request parameters the wire can carry beyond messages (reasoning, max_tokens and
    # structured_outputs always pass); the rest are dropped and reported even when the endpoint lists
    # them. None: whatever the endpoint lists.
    wire_parameters: ClassVar[frozenset[str] | None] = None
    renders_tools: ClassVar[bool] = False  # routeway writes tools into the prompt: any endpoint takes them
    prompts_json: ClassVar[bool] = False  # routeway asks for JSON in the prompt: any endpoint takes JSON mode
    default_max_tokens: ClassVar[int | None] = None  # when neither the client nor the endpoint bounds output

    def takes_tools(self, supported: Collection[str]) -> bool:
        return self.renders_tools or "tools" in supported

    def takes_structured_output(self, supported: Collection[str]) -> bool:
        return self.prompts_json or not STRUCTURED.isdisjoint(supported)

    @abstractmethod
    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        """Write the client's reasoning switch (``wish.enabled`` is True or False) into ``body``; False when
        this wire cannot carry it (the parameter is then dropped and reported)."""

    def response_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        """A JSON ``response_format`` (json_object / json_schema) in this engine's form."""
        body["response_format"] = msgspec.to_builtins(fmt)

    def render(self, body: dict[str, Any]) -> None:
        """The last rewrite of the finished body into the engine's own conventions (none by default)."""
        return None

    def splitter(self, id_prefix: str, tools: list[dict[str, Any]] | None) -> AnswerSplitter | None:
        """A per-request splitter for engines whose answers are raw text; None: the engine's parsers
        already give OpenAI's shape."""
        return None

    # the upstream's finish reason as one of stop, length, tool_calls, content_filter, error (or None)
    finish_reason = staticmethod(finish_reason)


def template_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """The body's ``chat_template_kwargs`` to write into: a copy, since the dict may be the endpoint's
    ``extra_body`` one, shared by every request to it."""
    kwargs = body["chat_template_kwargs"] = dict(body.get("chat_template_kwargs") or {})
    return kwargs


def with_system_prompt(messages: list[dict[str, Any]], prompt: str, before: bool = True) -> list[dict[str, Any]]:
    """``messages`` with ``prompt`` joined to a leading text system message (before or after its text), or
    as a new first system message. A new list: the client's messages are never changed."""
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        text = messages[0]["content"]
        joined = prompt + "\n\n" + text if before else text + "\n\n" + prompt
        return [{**messages[0], "content": joined}, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]
