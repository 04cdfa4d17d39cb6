"""The one question the exchange core asks about a dialect's answers: does routeway split the answer's
text itself? ``splitter_for`` gives the splitter for an endpoint whose engine sends raw text (today the
raw Hermes dialects), or None when the engine's parsers already give OpenAI's shape. The core holds the
object per request and never looks at the dialect's name."""

from __future__ import annotations

from typing import Any, Protocol

from routeway.catalog import Endpoint
from routeway.transform.raw_hermes import RAW_DIALECTS, HermesAnswer


class AnswerSplitter(Protocol):
    done: bool  # the streamed text has been flushed: nothing is held back any more

    def delta(self, fields: dict[str, Any], final: bool) -> None:
        """Split a streamed delta's text in place; ``final`` flushes what was held back."""

    def message(self, message: dict[str, Any], finish: str | None) -> tuple[str | None, dict[str, Any] | None]:
        """Split a whole answer's message in place; its finish reason and choice error."""

    def finish(self, finish: str | None) -> tuple[str | None, dict[str, Any] | None]:
        """The streamed answer's finish reason and choice error, once ``done``."""


def splitter_for(endpoint: Endpoint, id_prefix: str, tools: list[dict[str, Any]] | None) -> AnswerSplitter | None:
    if endpoint.dialect in RAW_DIALECTS:
        return HermesAnswer(id_prefix, tools)
    return None
