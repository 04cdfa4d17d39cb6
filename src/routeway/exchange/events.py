"""The normalized events the exchange core produces, whatever API the client speaks.

The core turns every upstream's answer into these; one renderer per inbound API turns them into that
API's wire (api/chat_render.py for chat completions). ``Delta`` is one choice's increment of a stream,
``Answer`` a whole (non-streaming) answer, ``Outcome`` how the exchange ended once settled.

Deltas keep the normalized fields in the small dict the upstream event arrived in (content, reasoning,
reasoning_details, tool_calls, plus fields routeway does not interpret, e.g. ``role``) and read them
through properties: no copy per streamed chunk (the benchmark measures CPU per chunk)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routeway.errors import APIError
from routeway.transform.usage import UsageCounts


@dataclass(slots=True)
class Delta:
    """One choice's increment: text, reasoning and tool-call fragments, and its finish when it ends."""

    index: int
    fields: dict[str, Any]  # the normalized delta: content, reasoning, reasoning_details, tool_calls, …
    choice: dict[str, Any]  # the choice it came in, for fields a renderer may pass on as they are (logprobs)
    finish: str | None = None  # normalized: stop, length, tool_calls, content_filter, error
    native_finish: str | None = None
    error: dict[str, Any] | None = None  # a problem with this choice alone (e.g. an invalid tool call)

    @property
    def text(self) -> str | None:
        return self.fields.get("content")

    @property
    def reasoning(self) -> str | None:
        return self.fields.get("reasoning")

    @property
    def reasoning_details(self) -> list[dict[str, Any]] | None:
        return self.fields.get("reasoning_details")

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        """OpenAI-shaped fragments: ``{"index", "id"?, "type"?, "function": {"name"?, "arguments"}}``."""
        return self.fields.get("tool_calls")


@dataclass(slots=True)
class Choice:
    """One choice of a whole answer: the normalized message (content, reasoning, reasoning_details,
    tool_calls, role, …) and how it finished."""

    index: int
    message: dict[str, Any]
    choice: dict[str, Any]  # as the upstream sent it, for fields a renderer may pass on (logprobs)
    finish: str | None
    native_finish: str | None
    error: dict[str, Any] | None = None


@dataclass(slots=True)
class Answer:
    choices: list[Choice]
    system_fingerprint: str | None = None


@dataclass(slots=True)
class Vectors:
    """A whole embeddings answer: one vector (floats, or base64 as the upstream sent it) per input."""

    data: list[dict[str, Any]]  # {"object": "embedding", "embedding", "index"}, in input order


@dataclass(slots=True)
class Outcome:
    """How a settled exchange ended, for the renderer to close the answer with."""

    id: str
    model: str
    provider: str | None
    usage: UsageCounts | None  # what is billed (None: nothing reached an upstream answer)
    cost_nano: int
    attempts: list[dict[str, Any]] = field(default_factory=list)  # the record's provider_responses
    answer: Answer | None = None  # a whole answer; None for streams and failures
    vectors: Vectors | None = None  # an embeddings answer
    failure: APIError | None = None  # after the status line went out: the error travels in the body
    held: bool = False  # the store could not write the settlement: its charge is held until it can
    store_problem: str | None = None
    cancelled: bool = False  # the client left: nothing more to send
