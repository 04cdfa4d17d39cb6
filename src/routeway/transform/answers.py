"""What the exchange core asks of the answering endpoint's dialect, without ever seeing its name: does
routeway split the answer's text itself (a splitter, made per request: today the raw Hermes dialects'),
and how does the upstream's finish reason read in OpenRouter's vocabulary."""

from __future__ import annotations

from typing import Any, Protocol

from routeway.catalog import Endpoint


class AnswerSplitter(Protocol):
    done: bool  # the streamed text has been flushed: nothing is held back any more

    def delta(self, fields: dict[str, Any], final: bool) -> None:
        """Split a streamed delta's text in place; ``final`` flushes what was held back."""

    def message(self, message: dict[str, Any], finish: str | None) -> tuple[str | None, dict[str, Any] | None]:
        """Split a whole answer's message in place; its finish reason and choice error."""

    def finish(self, finish: str | None) -> tuple[str | None, dict[str, Any] | None]:
        """The streamed answer's finish reason and choice error, once ``done``."""


class AnswerReading(Protocol):
    def splitter(self, id_prefix: str, tools: list[dict[str, Any]] | None) -> AnswerSplitter | None:
        """A splitter for this request's answer, or None when the engine already gives OpenAI's shape."""

    def finish_reason(self, native: str | None) -> str | None:
        """stop, length, tool_calls, content_filter or error (None while the choice goes on)."""


def reading_for(endpoint: Endpoint) -> AnswerReading:
    return endpoint.dialect_impl
