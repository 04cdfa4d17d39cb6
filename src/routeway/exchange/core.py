"""One request from reservation to settlement, for any inbound API: reserve the worst case, try the
planned attempts (routing/attempts.py), turn the answer into normalized events (exchange/stream.py,
exchange/whole.py) for the client's renderer, then settle: bill the usage within the bound, record the
generation and the answering endpoint's health, and hand both to the ledger."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from routeway.errors import APIError
from routeway.exchange.client import Client
from routeway.exchange.events import Answer, Outcome, Vectors
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import KeyState, Reservation
from routeway.ledger.bound import TokenBound, worst_case
from routeway.ledger.ids import new_generation_id
from routeway.ledger.metering import GenerationRecord, NeedsLease
from routeway.ledger.money import worst_case_cost
from routeway.observe.ids import REQUEST_ID, traceparent, tracestate, upstream_headers
from routeway.providers import UpstreamCall, open_call
from routeway.providers.propagate import UPSTREAM_HEADERS
from routeway.routing.attempts import first_answer, note_answer
from routeway.routing.plan import Attempt
from routeway.transform import tokens
from routeway.transform.answers import AnswerSplitter, reading_for
from routeway.transform.normalize import finish_reason
from routeway.transform.reasoning import wish
from routeway.transform.request import completion_body, upstream_body
from routeway.transform.usage import CAPPED, UsageCounts
from routeway.wire.chat import ChatRequest

if TYPE_CHECKING:
    from routeway.catalog import Endpoint
    from routeway.observe.tracing import ExchangeTrace
    from routeway.services import Services

T = TypeVar("T")
log = logging.getLogger("routeway.chat")


class Exchange:
    """The state of one request; the streaming and whole-answer halves are functions over it."""

    def __init__(self, services: Services, chat: ChatRequest, key: KeyState, attempts: list[Attempt],
                 body_bytes: int, headers: Mapping[str, str], client: Client, generation_id: str | None = None,
                 api: str = "chat") -> None:
        self.services = services
        self.api = api  # the inbound API, recorded; "completions" also sends the prompt to /completions
        self.upstream_fields: dict[str, Any] = {}  # fields of the inbound API's own that go upstream as they are
        self.prompts = 1  # separate prompts in the request (embedding inputs), each one within the context
        self.split_text = True  # False: the answer's text goes to the client as it is (a text completion's)
        self.count_prompt: Callable[[], int] = lambda: tokens.count_prompt(self.chat.messages or [])
        self.chat = chat
        self.key = key
        self.attempts = attempts
        self.body_bytes = body_bytes
        self.headers = headers
        self.client = client
        self.id = generation_id or new_generation_id()
        self.started = time.monotonic()
        self.attempt_began = self.started
        self.first_token: float | None = None
        self.record: GenerationRecord | None = None
        self.attempt: Attempt | None = None
        self.usage: UsageCounts | None = None
        self.usage_rejected: str | None = None  # why the answering stream's usage was discarded
        self.produced: list[str] = []  # completion text pieces, for estimating when usage is missing
        self.content_parts: list[str] = []  # streamed content, for checking JSON answers at the end
        self.native_finish: str | None = None
        self.finish: str | None = None  # the normalized finish reason of the first choice, as sent
        self.attempt_log: list[dict[str, Any]] = []  # one entry per upstream attempt, kept in the record
        self.exclude_reasoning = wish(chat).exclude
        self.splitter: AnswerSplitter | None = None  # the answering engine's own text splitting, when it needs one
        self.finish_reason = finish_reason  # the answering engine's finish reasons, normalized
        self.client_left = False  # the client went away: nothing more is sent
        self.recorded = True  # False when the store could not write the settlement: its charge is held, pending
        # traces: None unless they are on (then observe/tracing.py is loaded); one attribute check when off
        self.trace: ExchangeTrace | None = services.tracing.begin(self) if services.tracing is not None else None
        request_id, parent = headers.get(REQUEST_ID), headers.get("traceparent")
        if parent is not None:  # upstream calls carry the request's id and trace
            state = tracestate(headers.get("tracestate"))
            UPSTREAM_HEADERS.set(upstream_headers(request_id, traceparent(parent), state))
        elif request_id is not None:  # the usual case (app.py gives every API request an id): no trace to check
            UPSTREAM_HEADERS.set(upstream_headers(request_id, None))
        self.slot: str | None = None  # the answering engine's max_concurrency slot, given back at the end

    def run(self, body: Callable[[Exchange], Awaitable[Answer | Vectors | APIError | None]]) -> Awaitable[Outcome]:
        """Reserve, run ``body`` (exchange.stream.relay or exchange.whole.complete), settle. An error
        before the status line went out is raised; after it, it is the outcome's ``failure``. Observers
        (traces, JSON request log, per-account exports: ``services.watchers``) are told once it is over."""
        if not self.services.watchers:
            # a plain function handing back the coroutine: with no observers, no coroutine layer of its own
            # that every resumption of the request's task would pass through (bench step 37)
            return self._run(body)
        return self._watched(body)

    async def _watched(self, body: Callable[[Exchange], Awaitable[Answer | Vectors | APIError | None]]) -> Outcome:
        try:
            outcome = await self._run(body)
        except BaseException as error:
            self._tell_watchers(None, error if isinstance(error, APIError) else
                                APIError(500, "internal error", error_type="server"))
            raise
        self._tell_watchers(outcome, None)
        return outcome

    def _tell_watchers(self, outcome: Outcome | None, failure: APIError | None) -> None:
        for watcher in self.services.watchers:
            try:
                watcher.exchange_done(self, outcome, failure)
            except Exception:  # an observer's bug must not touch the answer, which is already settled
                log.exception("observer %s failed on generation %s", type(watcher).__name__, self.id)

    async def _run(self, body: Callable[[Exchange], Awaitable[Answer | Vectors | APIError | None]]) -> Outcome:
        try:
            reservation = self._reserve()
        except NeedsLease as need:  # several processes share the store: lease more credit, then reserve
            await self.services.metering.cover(need)
            reservation = self._reserve(covered=True)
        result: Answer | Vectors | APIError | None = None
        try:
            result = await body(self)
        except APIError as error:
            if self.record is not None:
                self.record.status, self.record.error = error.status, error.message
            if not self.client.committed:
                raise
            result = error
        finally:
            if self.slot is not None:
                self.services.slots.release(self.slot)
                self.slot = None
            if self.record is None:
                self.services.metering.release(reservation)
            else:
                await self._settle(reservation)
        recorded = self.recorded
        return Outcome(
            id=self.id, model=self.attempt.model.id if self.attempt else (self.chat.model or ""),
            provider=self.attempt.endpoint.provider.label if self.attempt else None,
            usage=self.usage if self.record is not None else None,
            cost_nano=self.record.total_cost_nano if self.record is not None else 0,
            attempts=self.attempt_log, answer=result if isinstance(result, Answer) else None,
            vectors=result if isinstance(result, Vectors) else None,
            failure=result if isinstance(result, APIError) else None,
            held=not recorded, store_problem=self.services.store.problem if not recorded else None,
            cancelled=self.client_left)

    # ---- money ----------------------------------------------------------------------------------
    def bound(self, endpoint: Endpoint) -> TokenBound:
        bound = TokenBound.of(self.body_bytes, self.chat.output_limit, endpoint)
        if self.prompts > 1:  # each prompt within the context, all of them within the body's bytes
            bound = bound._replace(prompt=min(self.body_bytes, endpoint.context_length * self.prompts))
        return bound

    def _reserve(self, covered: bool = False) -> Reservation:
        """The worst case over the planned attempts: the same bound later caps what the answering
        endpoint may claim, so the charge never exceeds this reservation."""
        if self.prompts > 1:
            worst, chosen = max(((self.bound(a.endpoint).cost(a.endpoint.prompt_bound_nano_per_m,
                                                             a.endpoint.completion_nano_per_m), a.endpoint)
                                 for a in self.attempts), key=lambda pair: pair[0])
        else:
            worst, chosen = worst_case(self.body_bytes, self.chat.output_limit, [a.endpoint for a in self.attempts])
        prompt_cost = worst_case_cost(min(self.body_bytes, chosen.context_length), chosen.prompt_bound_nano_per_m)
        if covered:
            return self.services.metering.reserve(self.key, worst, chosen.completion_nano_per_m, prompt_cost,
                                                  covered=True)
        return self.services.metering.reserve(self.key, worst, chosen.completion_nano_per_m, prompt_cost)

    def note_usage_rejected(self, attempt: Attempt, reason: str) -> None:
        self.services.usage_rejections[(attempt.endpoint.tag, reason)] += 1

    async def _settle(self, reservation: Reservation) -> None:
        record = self.record
        assert record is not None
        if self.usage is None and (self.produced or record.status == 200):
            prompt = await tokens.count_off_loop(self.count_prompt)
            completion = await tokens.count_off_loop(tokens.count_text, "".join(self.produced))
            self.usage = UsageCounts(prompt=prompt, completion=completion, estimated=True)
        self._bill_usage(record)
        record.native_finish_reason = self.native_finish
        finish = self.finish or self.finish_reason(self.native_finish)
        record.finish_reason = finish if record.status == 200 else "error"
        if self.first_token is not None:
            record.latency_ms = int((self.first_token - self.started) * 1000)
            record.generation_time_ms = int((time.monotonic() - self.first_token) * 1000)
        if self.attempt is not None and self.first_token is not None:  # failures before were noted per attempt
            generating = time.monotonic() - (self.first_token if self.chat.stream else self.attempt_began)
            note_answer(self.services.health, self.attempt, cancelled=record.cancelled, ok=record.status == 200,
                        ttft_ms=(self.first_token - self.attempt_began) * 1000,
                        tokens_per_s=(self.usage.completion / generating) if self.usage and generating > 0 else None)
        self.recorded = await self.services.metering.finish(reservation, record)

    def _bill_usage(self, record: GenerationRecord) -> None:
        """Bill the upstream's counts (or the estimate) cut to the request's bound at the answering
        endpoint, so the charge stays within the reservation; the record keeps the claim beside them."""
        claimed = self.usage or UsageCounts()
        usage = claimed
        if self.attempt is not None:
            bound = self.bound(self.attempt.endpoint)
            usage = claimed.capped_to(bound.prompt, bound.completion)
            if usage.capped and not usage.estimated:  # the metric is for upstreams' claims, not our estimate
                self.note_usage_rejected(self.attempt, CAPPED)
            if self.usage_rejected is not None:
                self.note_usage_rejected(self.attempt, self.usage_rejected)
        if self.usage is not None:
            self.usage = usage  # the client sees the counts it is billed for
        record.tokens_prompt, record.tokens_completion = usage.prompt, usage.completion
        record.tokens_cache_read, record.tokens_cache_write = usage.cached, usage.cache_write
        record.usage_estimated, record.usage_capped = usage.estimated, usage.capped
        record.usage_rejected = self.usage_rejected
        if claimed.native is not None:
            record.native_tokens_prompt, record.native_tokens_completion = claimed.prompt, claimed.completion
            record.native_tokens_reasoning, record.native_tokens_cached = claimed.reasoning, claimed.cached

    # ---- attempts -------------------------------------------------------------------------------
    def open_upstream(self, attempt: Attempt, stream: bool, entry: dict[str, Any]) -> Awaitable[UpstreamCall]:
        """The request as ``attempt``'s endpoint takes it, opened on the upstream route of this API (the
        adapter's coroutine, handed back: no layer of its own, bench step 37)."""
        body, entry["dropped_parameters"] = upstream_body(self.chat, attempt.endpoint, stream)
        if self.api == "completions":
            body = completion_body(body, self.chat.prompt or "", self.upstream_fields)
        return open_call(self.services.adapters[attempt.endpoint.provider.name], self.api, attempt.endpoint,
                         body, stream, self.headers)

    async def first_answer(self, start: Callable[[Attempt, dict[str, Any]], Awaitable[T]]) -> T:
        """The first attempt that starts answering (routing/attempts.py falls back until then)."""
        async def begin(attempt: Attempt, entry: dict[str, Any]) -> T:
            self._on_attempt(attempt)
            if self.trace is not None:  # its span's context is what this attempt's upstream call carries
                self.trace.attempt(attempt, entry, len(self.attempt_log) - 1)
            return await start(attempt, entry)

        answering, result = await first_answer(self.attempts, self.services.health, self.services.settings.routing,
                                               begin, self.attempt_log, self.services.slots)
        if answering.endpoint.max_concurrency is not None:
            self.slot = answering.endpoint.key  # held until the exchange ends
        assert self.attempt is not None
        reading = reading_for(self.attempt.endpoint)
        self.finish_reason = reading.finish_reason
        if self.split_text:
            self.splitter = reading.splitter(f"call_{self.id.rsplit('-', 1)[-1]}_", self.tools())
        return result

    def _on_attempt(self, attempt: Attempt) -> None:
        e = attempt.endpoint
        if self.record is None:
            headers = self.headers
            self.record = GenerationRecord(
                id=self.id, account_id=self.key.account_id, key_hash=self.key.hash, model=attempt.model.id,
                provider_name=e.provider.label, provider_slug=e.tag, upstream_model=e.upstream_model,
                prompt_nano_per_m=e.prompt_nano_per_m, completion_nano_per_m=e.completion_nano_per_m,
                streamed=self.chat.stream, created_at=now_ms(), http_referer=headers.get("http-referer"),
                app_title=headers.get("x-openrouter-title") or headers.get("x-title"), attempts=self.attempt_log,
                api=self.api, cache_read_nano_per_m=e.cache_read_nano_per_m,
                cache_write_nano_per_m=e.cache_write_nano_per_m,
            )
        else:  # a fallback: the record now describes this attempt's endpoint
            record = self.record
            record.model, record.provider_name, record.provider_slug = attempt.model.id, e.provider.label, e.tag
            record.upstream_model = e.upstream_model
            record.prompt_nano_per_m, record.completion_nano_per_m = e.prompt_nano_per_m, e.completion_nano_per_m
            record.cache_read_nano_per_m = e.cache_read_nano_per_m
            record.cache_write_nano_per_m = e.cache_write_nano_per_m
        self.attempt, self.attempt_began = attempt, time.monotonic()

    def tools(self) -> list[dict[str, Any]] | None:
        return [msgspec.to_builtins(t) for t in self.chat.tools] if self.chat.tools else None
