"""Anthropic's Messages API inbound (what Claude Code and the Claude Agent SDK speak): ``POST /messages``
and ``POST /messages/count_tokens`` under /api/v1 and /v1, and ``GET /v1/models`` in Anthropic's list shape
for a caller sending ``anthropic-version``.

The request is translated into routeway's internal request (api/messages_request.py) and answered by the
same path as chat completions (api/chat.py ``answer``: limits, plan, reservation, attempts, settlement),
rendered by api/messages_render.py. Keys come as ``x-api-key`` (Anthropic's SDK with ``ANTHROPIC_API_KEY``)
or ``Authorization: Bearer`` (``ANTHROPIC_AUTH_TOKEN``); every error is in Anthropic's error shape."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from routeway.api.answer_cache import cached_answers
from routeway.api.auth import authenticate, bearer
from routeway.api.chat import admit, answer
from routeway.api.http import ClientDisconnected, Request, Response, json_response
from routeway.api.messages_render import AnthropicMessages, error_response
from routeway.api.messages_request import count_messages, to_chat
from routeway.errors import APIError
from routeway.ledger.periods import iso
from routeway.transform import tokens
from routeway.wire.messages import parse_count_tokens_request, parse_messages_request

if TYPE_CHECKING:
    from routeway.services import Services

log = logging.getLogger("routeway.messages")
API = "messages"  # the generation record's ``api``


def api_key(request: Request) -> str | None:
    """``Authorization: Bearer`` first (Claude Code with ANTHROPIC_AUTH_TOKEN sends it, and may send an empty
    ``x-api-key`` beside it), else ``x-api-key``."""
    return bearer(request) or request.headers.get("x-api-key", "").strip() or None


def routes(services: Services) -> list[tuple[str, str, Any]]:
    async def messages(request: Request, state: dict[str, AnthropicMessages]) -> Response | None:
        key = authenticate(services, request, management=False, token=api_key(request))
        await admit(services, key)
        raw = await request.body(services.settings.max_body_bytes)
        chat = to_chat(parse_messages_request(raw))
        cache = cached_answers(services, request, key, API, chat, raw)
        if cache is not None and (entry := await cache.lookup()) is not None:
            return await cache.replay(entry)
        keepalive = services.settings.keepalive_seconds

        def renderer(generation_id: str, prompt_estimate: int) -> AnthropicMessages:
            state["renderer"] = AnthropicMessages(request, chat.stream, generation_id, keepalive, prompt_estimate)
            return state["renderer"]

        if cache is None:
            return await answer(services, request, key, chat, len(raw), renderer, api=API)
        return await cache.keep(await answer(services, request, key, chat, len(raw), renderer, api=API,
                                             prepare=cache.prepare))

    async def count_tokens(request: Request, state: dict[str, AnthropicMessages]) -> Response:
        """routeway's estimate (transform/tokens.py): no upstream is asked, nothing is charged."""
        key = authenticate(services, request, management=False, token=api_key(request))
        await services.throttle.check_key(key)
        counted = count_messages(parse_count_tokens_request(await request.body(services.settings.max_body_bytes)))
        return json_response({"input_tokens": await tokens.count_off_loop(tokens.count_prompt, counted)})

    return [("POST", "/messages", anthropic_errors(messages)),
            ("POST", "/messages/count_tokens", anthropic_errors(count_tokens))]


def anthropic_errors(handler: Callable[[Request, dict[str, AnthropicMessages]], Awaitable[Response | None]],
                     ) -> Callable[[Request], Awaitable[Response | None]]:
    """Every failure before the answer's status line as Anthropic's error shape (its SDK reads the type);
    after it, the renderer ends the stream with an ``error`` event."""
    async def wrapped(request: Request) -> Response | None:
        state: dict[str, AnthropicMessages] = {}
        try:
            return await handler(request, state)
        except ClientDisconnected:
            raise
        except APIError as error:
            if "renderer" in state and state["renderer"].committed:
                raise
            return error_response(error)
        except Exception:
            if "renderer" in state and state["renderer"].committed:
                raise
            log.exception("unhandled error on %s %s", request.method, request.scope["path"])
            return error_response(APIError(500, "Internal error; the server log has details."))

    return wrapped


def anthropic_models(services: Services, request: Request) -> Response:
    """The catalog in Anthropic's model list shape (Claude Code's model picker), paged by ``limit``
    (default 20, at most 1000), ``after_id`` and ``before_id`` as Anthropic pages it."""
    limit = min(max(request.query_int("limit", 20), 1), 1000)
    ids = [m.id for m in services.catalog.models.values() if "text" in m.output_modalities]  # as GET /models lists
    start, end = 0, len(ids)
    after, before = request.query.get("after_id"), request.query.get("before_id")
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(ids)
    if before is not None:
        end = ids.index(before) if before in ids else 0
        start = max(start, end - limit)
    page = ids[start:min(end, start + limit)]
    data = [{"type": "model", "id": model_id, "display_name": services.catalog.models[model_id].name,
             "created_at": iso(services.catalog.models[model_id].created * 1000)} for model_id in page]
    return json_response({"data": data, "has_more": start + len(page) < end,
                          "first_id": page[0] if page else None, "last_id": page[-1] if page else None})
