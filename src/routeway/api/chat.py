"""POST /chat/completions: authenticate and validate here; ``answer`` plans any inbound API's request once
translated (api/messages.py uses it too); the exchange core (exchange/) reserves, tries the attempts and
settles; api/chat_render.py writes its events as JSON or SSE."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from routeway.api.auth import authenticate
from routeway.api.chat_cache import record_misses, replay
from routeway.api.chat_render import ChatCompletions
from routeway.api.http import Request, Response
from routeway.errors import APIError, store_unavailable
from routeway.exchange import stream, whole
from routeway.exchange.client import Renderer
from routeway.exchange.core import Exchange
from routeway.ledger.book import KeyState
from routeway.ledger.ids import new_generation_id
from routeway.routing.plan import Demand, requested_models, sent_parameters
from routeway.transform import structured, tokens
from routeway.wire.chat import ChatRequest, parse_chat_request

if TYPE_CHECKING:
    from routeway.services import Services


def routes(services: Services) -> list[tuple[str, str, Any]]:
    async def chat_completions(request: Request) -> Response | None:
        key = authenticate(services, request, management=False)
        await admit(services, key)
        raw = services.presets.resolve(key.account_id, await request.body(services.settings.max_body_bytes))
        chat = parse_chat_request(raw)
        cached = services.response_cache.policy(request.headers, key, "chat", chat.stream, raw)
        if cached is not None:
            entry = await services.response_cache.lookup(cached)
            if entry is not None and entry.stream == chat.stream:
                return await replay(services, request, chat, key, entry)
        keepalive = services.settings.keepalive_seconds

        def render(generation_id: str, _: int) -> ChatCompletions:
            return ChatCompletions(request, chat.stream, generation_id, keepalive)

        def record(renderer: Renderer, exchange: Exchange) -> None:
            assert cached is not None and isinstance(renderer, ChatCompletions)
            record_misses(services, renderer, exchange, cached, key)

        return await answer(services, request, key, chat, len(raw), render,
                            prepare=record if cached is not None else None)

    return [("POST", "/chat/completions", chat_completions)]


async def admit(services: Services, key: KeyState) -> None:
    """What a key must pass before its body is read: its rate limit, and a store that can record the charge."""
    await services.throttle.check_key(key)
    if not services.store.writable:  # an attribute read: paid work only when its charge can be recorded
        raise store_unavailable(services.store.problem)


async def answer(services: Services, request: Request, key: KeyState, chat: ChatRequest, body_bytes: int,
                 renderer: Callable[[str, int], Renderer], api: str = "chat",
                 prepare: Callable[[Renderer, Exchange], None] | None = None) -> Response | None:
    """Any inbound API's request, once translated into ``chat``: free-model limits, the plan, and the core's
    exchange, rendered by ``renderer(generation_id, prompt_estimate)`` in that API's wire; ``prepare`` sees
    the renderer and the exchange before it runs (the response cache records a miss through it)."""
    if any(model.endswith(":free") for model in requested_models(chat)):
        await services.throttle.check_free(services.accounts.of_key(key))
    structured.check_request(chat)
    prompt = await prompt_estimate(services, chat, body_bytes)
    demand = Demand(prompt, chat.output_limit, sent_parameters(chat))
    attempts = services.planner.plan(chat, demand, time.time(), services.guardrails.policy(key))
    client = renderer(new_generation_id(), prompt)
    cap = services.settings.limits.key_max_concurrency
    if cap:
        routing = services.settings.routing
        if not await services.slots.acquire(key.hash, cap, routing.concurrency_queue, routing.concurrency_wait_seconds):
            raise APIError(429, f"This key has {cap} requests in flight, its max_concurrency; retry shortly.",
                           headers={"retry-after": "1"}, metadata={"limited_by": "key_max_concurrency"})
    try:
        if chat.stream:
            await services.throttle.open_stream(key)  # before the reservation: a refused stream holds nothing
        try:
            # the core's exchange, rendered by the inbound API's renderer; inline rather than in a coroutine
            # of its own, which every resumption of the request's task would pass through (bench step 37)
            exchange = Exchange(services, chat, key, attempts, body_bytes, request.headers, client,
                                client.generation_id, api=api)
            if prepare is not None:
                prepare(client, exchange)
            outcome = await exchange.run(stream.relay if chat.stream else whole.complete)
            return await client.finish(outcome)
        finally:
            if chat.stream:
                await services.throttle.close_stream(key)  # finished, failed, cancelled or the client gone
    finally:
        if cap:
            services.slots.release(key.hash)


async def prompt_estimate(services: Services, chat: ChatRequest, body_bytes: int) -> int:
    """Bytes bound tokens from above; count (off the loop) only when that bound might not fit a context."""
    contexts = [e.context_length for m in requested_models(chat)
                for e in services.catalog.endpoints_for(m.partition(":")[0])]
    if not contexts or body_bytes + (chat.output_limit or 0) <= min(contexts):
        return min(body_bytes, tokens.PER_MESSAGE_OVERHEAD * len(chat.messages or ()) + body_bytes // 4)
    return await tokens.count_off_loop(tokens.count_prompt, chat.messages)
