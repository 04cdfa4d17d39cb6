"""One finished exchange as plain values: what the JSON request log writes, what traces carry as
attributes, and what each account's destinations receive. Built once per exchange, only when some
observer is on (exchange/core.py asks ``services.watchers`` first)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from routeway.errors import APIError
from routeway.observe.ids import REQUEST_ID

if TYPE_CHECKING:
    from routeway.exchange.core import Exchange
    from routeway.exchange.events import Outcome


@dataclass(slots=True)
class Finished:
    request_id: str
    generation_id: str
    account_id: str
    key_hash: str
    requested_model: str
    model: str  # the model that answered (or was last tried)
    provider: str | None  # the answering endpoint's provider slug
    status: int
    cost_nano: int
    tokens_prompt: int | None
    tokens_completion: int | None
    finish_reason: str | None
    stream: bool
    cancelled: bool
    started_ms: int  # wall clock, epoch milliseconds
    latency_ms: int  # the whole exchange
    ttft_ms: int | None  # time to the first token (streams) or to the whole answer
    error: str | None
    session_id: str | None
    user: str | None
    api: str = "chat"  # the inbound API: chat, messages, responses
    attempts: list[dict[str, Any]] = field(default_factory=list)
    cache_hit: bool = False  # answered from the response cache: no exchange ran, nothing was charged
    cache_saved_nano: int = 0  # what the kept answer cost when it was made


    def log_fields(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "generation_id": self.generation_id, "key_hash": self.key_hash,
                "account_id": self.account_id, "model": self.model, "requested_model": self.requested_model,
                "provider": self.provider, "status": self.status, "cost_usd": self.cost_nano / 1e9,
                "cost_nano": self.cost_nano, "tokens_prompt": self.tokens_prompt,
                "tokens_completion": self.tokens_completion, "finish_reason": self.finish_reason,
                "stream": self.stream, "cancelled": self.cancelled, "latency_ms": self.latency_ms,
                "ttft_ms": self.ttft_ms, "attempts": len(self.attempts), "error": self.error, "api": self.api,
                "cache_hit": self.cache_hit}


def finished(ex: Exchange, outcome: Outcome | None, failure: APIError | None) -> Finished:
    record = ex.record
    status = record.status if record is not None else (failure.status if failure is not None else 200)
    if outcome is not None and outcome.failure is not None:
        status = outcome.failure.status
    usage = outcome.usage if outcome is not None else None
    now = time.monotonic()
    return Finished(
        request_id=ex.headers.get(REQUEST_ID, ""), generation_id=ex.id, account_id=ex.key.account_id,
        key_hash=ex.key.hash, requested_model=ex.chat.model or "",
        model=ex.attempt.model.id if ex.attempt else (ex.chat.model or ""),
        provider=ex.attempt.endpoint.tag if ex.attempt else None, status=status,
        cost_nano=record.total_cost_nano if record is not None else 0,
        tokens_prompt=usage.prompt if usage is not None else None,
        tokens_completion=usage.completion if usage is not None else None,
        finish_reason=(record.finish_reason if record is not None else None) or ("error" if status != 200 else None),
        stream=ex.chat.stream, cancelled=ex.client_left,
        started_ms=int((time.time() - (now - ex.started)) * 1000), latency_ms=int((now - ex.started) * 1000),
        ttft_ms=int((ex.first_token - ex.started) * 1000) if ex.first_token is not None else None,
        error=(failure.message if failure is not None else record.error if record is not None else None),
        session_id=ex.chat.session_id or ex.headers.get("x-session-id"), user=ex.chat.user, api=ex.api,
        attempts=ex.attempt_log)


def completion_text(ex: Exchange, outcome: Outcome | None) -> str:
    """What the model answered (the first choice's content), for observers that may carry content."""
    if outcome is not None and outcome.answer is not None and outcome.answer.choices:
        content = outcome.answer.choices[0].message.get("content")
        return content if isinstance(content, str) else ""
    return "".join(ex.content_parts)


@dataclass(slots=True)
class CacheHit:
    """A request the response cache answered, for observers: it ran no exchange. The tracer (told first)
    sets the trace and span ids its span got, so the log line and the exports join that trace."""

    finished: Finished
    headers: Mapping[str, str]
    messages: Any  # the request's messages (or prompt), for destinations that carry content
    completion: str  # the kept answer's text
    source_id: str  # the generation that made the kept answer
    trace_id: str | None = None
    span_id: str | None = None


class Watcher(Protocol):
    """Told of every exchange once it is settled (or failed before answering), and of every cache hit;
    must never block or raise."""

    def exchange_done(self, ex: Exchange, outcome: Outcome | None, failure: APIError | None) -> None: ...

    def cache_hit(self, hit: CacheHit) -> None: ...
