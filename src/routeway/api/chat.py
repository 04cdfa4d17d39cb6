"""POST /chat/completions: authenticate, validate, plan, reserve, try attempts, relay, settle."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from routeway.api.auth import authenticate
from routeway.api.disconnect import unless_client_leaves
from routeway.api.http import Request, Response, json_response
from routeway.api.stream import StreamRelay
from routeway.errors import APIError, store_unavailable
from routeway.ledger.accounts import now_ms
from routeway.ledger.book import KeyState, Reservation
from routeway.ledger.bound import TokenBound
from routeway.ledger.ids import new_generation_id
from routeway.ledger.metering import GenerationRecord
from routeway.ledger.money import nano_to_usd, worst_case_cost
from routeway.providers import UpstreamError
from routeway.routing.attempts import first_answer
from routeway.routing.health import ERROR, OK
from routeway.routing.plan import Attempt, Demand, requested_models, sent_parameters
from routeway.transform import structured, tokens
from routeway.transform.normalize import finish_reason, normalize_message
from routeway.transform.raw_hermes import RAW_DIALECTS, DeltaSplitter, finish_reason_for, split_message, tool_names
from routeway.transform.reasoning import finish_reasoning, wish
from routeway.transform.request import upstream_body
from routeway.transform.usage import CAPPED, MalformedUsage, UsageCounts
from routeway.wire.chat import ChatRequest, parse_chat_request

if TYPE_CHECKING:
    from routeway.services import Services
    from routeway.catalog import Endpoint

def routes(services: Services) -> list[tuple[str, str, Any]]:
    async def chat_completions(request: Request) -> Response | None:
        key = authenticate(services, request, management=False)
        services.throttle.check_key(key)
        if not services.store.writable:  # an attribute read: paid work only when its charge can be recorded
            raise store_unavailable(services.store.problem)
        raw = await request.body(services.settings.max_body_bytes)
        chat = parse_chat_request(raw)
        if any(model.endswith(":free") for model in requested_models(chat)):
            services.throttle.check_free(services.book.accounts[key.account_id])
        structured.check_request(chat)
        demand = Demand(await _prompt_estimate(services, chat, len(raw)), chat.output_limit, sent_parameters(chat))
        attempts = services.planner.plan(chat, demand, time.time())
        if not chat.stream:
            return await Exchange(services, request, chat, key, attempts, len(raw)).run()
        services.throttle.open_stream(key)  # before the reservation: a refused stream holds nothing
        try:
            return await Exchange(services, request, chat, key, attempts, len(raw)).run()
        finally:
            services.throttle.close_stream(key)  # finished, failed, cancelled or the client gone

    return [("POST", "/chat/completions", chat_completions)]


async def _prompt_estimate(services: Services, chat: ChatRequest, body_bytes: int) -> int:
    """Bytes bound tokens from above; count (off the loop) only when that bound might not fit a context."""
    contexts = [e.context_length for m in requested_models(chat) for e in services.catalog.endpoints_for(m.partition(":")[0])]
    if not contexts or body_bytes + (chat.output_limit or 0) <= min(contexts):
        return min(body_bytes, tokens.PER_MESSAGE_OVERHEAD * len(chat.messages or ()) + body_bytes // 4)
    return await tokens.count_off_loop(tokens.count_prompt, chat.messages)


class Exchange(StreamRelay):
    """One chat request from reservation to settlement; its state lives here, not in the handler.
    Non-streaming answers are handled here, streams in ``StreamRelay`` (api/stream.py)."""

    def __init__(self, services: Services, request: Request, chat: ChatRequest, key: KeyState,
                 attempts: list[Attempt], body_bytes: int) -> None:
        self.services = services
        self.request = request
        self.chat = chat
        self.key = key
        self.attempts = attempts
        self.body_bytes = body_bytes
        self.id = new_generation_id()
        self.started = time.monotonic()
        self.attempt_began = self.started
        self.first_token: float | None = None
        self.record: GenerationRecord | None = None
        self.attempt: Attempt | None = None
        self.usage: UsageCounts | None = None
        self.usage_rejected: str | None = None  # why the answering stream's usage was discarded
        self.produced: list[str] = []  # completion text pieces, for estimating when usage is missing
        self.native_finish: str | None = None
        self.finish: str | None = None  # the normalized finish reason of the first choice, as sent
        self.committed = False  # a 200 status line has gone out; errors now travel in the body
        self.recorded = True  # False when the store could not write the settlement: its charge is held, pending
        self.attempt_log: list[dict[str, Any]] = []  # one entry per upstream attempt, kept in the record
        self.exclude_reasoning = wish(chat).exclude
        self.splitter: DeltaSplitter | None = None  # raw Hermes text → reasoning, content, tool calls
        self.split_done = False
        self.made_calls = False
        self.content_parts: list[str] = []  # streamed content, for checking JSON answers at the end
        self.show_metadata = request.headers.get("x-openrouter-metadata", "").lower() == "enabled"

    # ---- money ----------------------------------------------------------------------------------
    def _bound(self, endpoint: Endpoint) -> TokenBound:
        return TokenBound.of(self.body_bytes, self.chat.output_limit, endpoint)

    def _reserve(self) -> Reservation:
        """The worst case over the planned attempts: the same bound later caps what the answering
        endpoint may claim, so the charge never exceeds this reservation."""
        worst, chosen = 0, self.attempts[0].endpoint
        for attempt in self.attempts:
            e = attempt.endpoint
            cost = self._bound(e).cost(e.prompt_nano_per_m, e.completion_nano_per_m)
            if cost > worst:
                worst, chosen = cost, e
        return self.services.metering.reserve(self.key, worst, chosen.completion_nano_per_m,
                                              worst_case_cost(self._bound(chosen).prompt, chosen.prompt_nano_per_m))

    def _note_usage_rejected(self, attempt: Attempt, reason: str) -> None:
        self.services.usage_rejections[(attempt.endpoint.tag, reason)] += 1

    def _on_attempt(self, attempt: Attempt) -> None:
        e = attempt.endpoint
        if self.record is None:
            headers = self.request.headers
            self.record = GenerationRecord(
                id=self.id, account_id=self.key.account_id, key_hash=self.key.hash, model=attempt.model.id,
                provider_name=e.provider.label, provider_slug=e.tag, upstream_model=e.upstream_model,
                prompt_nano_per_m=e.prompt_nano_per_m, completion_nano_per_m=e.completion_nano_per_m,
                streamed=self.chat.stream, created_at=now_ms(), http_referer=headers.get("http-referer"),
                app_title=headers.get("x-openrouter-title") or headers.get("x-title"), attempts=self.attempt_log,
            )
        record = self.record
        record.model, record.provider_name, record.provider_slug = attempt.model.id, e.provider.label, e.tag
        record.upstream_model = e.upstream_model
        record.prompt_nano_per_m, record.completion_nano_per_m = e.prompt_nano_per_m, e.completion_nano_per_m
        self.attempt, self.attempt_began = attempt, time.monotonic()

    async def run(self) -> Response | None:
        reservation = self._reserve()
        payload: dict[str, Any] | None = None
        failure: APIError | None = None
        try:
            if self.chat.stream:
                await self._stream()
            else:
                payload = await self._complete()
        except APIError as error:
            if self.record is not None:
                self.record.status, self.record.error = error.status, error.message
            if not self.committed:
                raise
            failure = error
        finally:
            if self.record is None:
                self.services.metering.release(reservation)
            else:
                await self._settle(reservation)
        if self.record is not None and self.record.cancelled:
            return None
        if self.chat.stream:
            await self._finish_stream(failure)
            return None
        if failure is not None:  # headers went out as 200 already: the error travels in the body
            body = json_response(failure.body()).body
        else:
            assert payload is not None
            payload["usage"] = self._usage_wire()
            self._add_metadata(payload)
            if not self.committed:
                return json_response(payload, extra_headers={"x-generation-id": self.id})
            body = json_response(payload).body
        await self.request.send({"type": "http.response.body", "body": body, "more_body": False})
        return None

    async def _settle(self, reservation: Reservation) -> None:
        record = self.record
        assert record is not None
        if self.usage is None and (self.produced or record.status == 200):
            prompt = await tokens.count_off_loop(tokens.count_prompt, self.chat.messages)
            completion = await tokens.count_off_loop(tokens.count_text, "".join(self.produced))
            self.usage = UsageCounts(prompt=prompt, completion=completion, estimated=True)
        self._bill_usage(record)
        record.native_finish_reason = self.native_finish
        record.finish_reason = (self.finish or finish_reason(self.native_finish)) if record.status == 200 else "error"
        if self.first_token is not None:
            record.latency_ms = int((self.first_token - self.started) * 1000)
            record.generation_time_ms = int((time.monotonic() - self.first_token) * 1000)
        self._report_health(record)
        self.recorded = await self.services.metering.finish(reservation, record)

    def _bill_usage(self, record: GenerationRecord) -> None:
        """Bill the upstream's counts (or the estimate) cut to the request's bound at the answering
        endpoint, so the charge stays within the reservation; the record keeps the claim beside them."""
        claimed = self.usage or UsageCounts()
        usage = claimed
        if self.attempt is not None:
            bound = self._bound(self.attempt.endpoint)
            usage = claimed.capped_to(bound.prompt, bound.completion)
            if usage.capped and not usage.estimated:  # the metric is for upstreams' claims, not our estimate
                self._note_usage_rejected(self.attempt, CAPPED)
            if self.usage_rejected is not None:
                self._note_usage_rejected(self.attempt, self.usage_rejected)
        if self.usage is not None:
            self.usage = usage  # the client sees the counts it is billed for
        record.tokens_prompt, record.tokens_completion = usage.prompt, usage.completion
        record.usage_estimated, record.usage_capped = usage.estimated, usage.capped
        record.usage_rejected = self.usage_rejected
        if claimed.native is not None:
            record.native_tokens_prompt, record.native_tokens_completion = claimed.prompt, claimed.completion
            record.native_tokens_reasoning, record.native_tokens_cached = claimed.reasoning, claimed.cached

    def _report_health(self, record: GenerationRecord) -> None:
        """The answering endpoint's outcome: failures before an answer were noted as attempts failed."""
        if self.attempt is None or self.first_token is None:
            return
        health = self.services.health.of(self.attempt.endpoint.key)
        if record.cancelled:
            health.breaker.release()
            return
        if record.status != 200:
            health.record(ERROR, time.time())
            return
        ttft = (self.first_token - self.attempt_began) * 1000
        generating = time.monotonic() - (self.first_token if self.chat.stream else self.attempt_began)
        tps = (self.usage.completion / generating) if self.usage and generating > 0 else None
        health.record(OK, time.time(), ttft_ms=ttft, tokens_per_s=tps)

    def _header_pairs(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-generation-id", self.id.encode())]

    def _usage_wire(self) -> dict[str, Any]:
        assert self.record is not None
        return (self.usage or UsageCounts()).to_wire(nano_to_usd(self.record.total_cost_nano))

    def _add_metadata(self, payload: dict[str, Any]) -> None:
        if self.show_metadata and self.record is not None:
            payload["openrouter_metadata"] = {"provider_responses": self.record.attempts}

    async def _first_answer(self, start: Callable[[Attempt, dict[str, Any]], Awaitable[Any]]) -> Any:
        async def begin(attempt: Attempt, entry: dict[str, Any]) -> Any:
            self._on_attempt(attempt)
            return await start(attempt, entry)

        _, result = await first_answer(self.attempts, self.services.health, self.services.settings.routing,
                                       begin, self.attempt_log)
        return result

    # ---- non-streaming --------------------------------------------------------------------------
    async def _complete(self) -> dict[str, Any] | None:
        finished, answer = await unless_client_leaves(self._first_answer(self._fetch), self.request,
                                                      self._keepalive_newline,
                                                      self.services.settings.keepalive_seconds)
        if not finished:
            if self.record is not None:
                self.record.cancelled = True
            return None
        assert answer is not None
        upstream, self.usage = answer
        self.first_token = time.monotonic()
        choices = upstream.get("choices") or []
        raw = self.attempt is not None and self.attempt.endpoint.dialect in RAW_DIALECTS
        for choice in choices:
            message = choice.get("message") or {}
            normalize_message(message)
            native = choice.get("finish_reason")
            choice["native_finish_reason"] = native
            choice["finish_reason"] = finish_reason(native)
            if raw:
                errors, unclosed = split_message(message, self._call_prefix(), tool_names(self._tools()))
                choice["finish_reason"] = finish_reason_for(choice["finish_reason"], bool(message.get("tool_calls")),
                                                            errors, unclosed)
                if errors:
                    choice["error"] = {"code": 502, "message": "; ".join(errors),
                                       "metadata": {"error_type": "invalid_tool_call"}}
            self.native_finish = self.native_finish or native
            self.finish = self.finish or choice["finish_reason"]
            for text in (message.get("content"), message.get("reasoning")):
                if isinstance(text, str):
                    self.produced.append(text)
            finish_reasoning(message, self.exclude_reasoning)
        assert self.record is not None and self.attempt is not None
        self.record.upstream_id = upstream.get("id")
        if structured.wants_json(self.chat.response_format):
            self._check_json(choices)
        return {
            "id": self.id, "object": "chat.completion", "created": int(time.time()), "model": self.attempt.model.id,
            "provider": self.attempt.endpoint.provider.label,
            "system_fingerprint": upstream.get("system_fingerprint"), "choices": choices,
        }

    def _call_prefix(self) -> str:
        return f"call_{self.id.rsplit('-', 1)[-1]}_"

    def _tools(self) -> list[dict[str, Any]] | None:
        return [msgspec.to_builtins(t) for t in self.chat.tools] if self.chat.tools else None

    def _check_json(self, choices: list[dict[str, Any]]) -> None:
        """Validate JSON answers after the reasoning block; heal when asked; strict means no invalid JSON."""
        fmt = self.chat.response_format
        assert fmt is not None
        heal = any(p.get("id") == "response-healing" and p.get("enabled", True) is not False
                   for p in self.chat.plugins or ())
        for choice in choices:
            message = choice.get("message") or {}
            if message.get("tool_calls"):
                continue
            verdict = structured.check_answer(message.get("content"), fmt, heal)
            if verdict.healed:
                message["content"] = verdict.text
            if not verdict.ok:
                if structured.is_strict(fmt):
                    raise APIError(502, f"The model's answer is not valid JSON for the requested schema (strict):"
                                   f" {verdict.problem}. Nothing invalid was passed on; retrying may succeed.",
                                   error_type="invalid_response")
                choice["error"] = {"code": 502, "message": verdict.problem,
                                   "metadata": {"error_type": "invalid_response"}}

    async def _fetch(self, attempt: Attempt, entry: dict[str, Any]) -> tuple[dict[str, Any], UsageCounts | None]:
        """The answer and its usage. Malformed usage makes the whole answer malformed: a 502 that
        falls back to the next endpoint and costs the client nothing."""
        body, entry["dropped_parameters"] = upstream_body(self.chat, attempt.endpoint, False)
        call = await self.services.adapters[attempt.endpoint.provider.name].open(attempt.endpoint, body, False)
        entry["status"] = call.upstream_status
        try:
            answer = await call.json()
        finally:
            call.close()
        try:
            return answer, UsageCounts.from_upstream(answer.get("usage"))
        except MalformedUsage as bad:
            self._note_usage_rejected(attempt, bad.reason)
            raise UpstreamError(502, f"upstream answered with malformed usage: {bad}") from None

    async def _keepalive_newline(self) -> None:
        """A slow non-streaming answer: commit to 200 and send whitespace so clients' read timeouts
        (the openrouter SDK's is 5 s) do not fire; JSON parsers skip leading whitespace."""
        if not self.committed:
            self.committed = True
            await self.request.send({"type": "http.response.start", "status": 200,
                                     "headers": [(b"content-type", b"application/json")] + self._header_pairs()})
        await self.request.send({"type": "http.response.body", "body": b"\n", "more_body": True})
