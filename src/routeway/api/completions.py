"""POST /completions: legacy text completions. Authenticated, limited, planned and settled as chat is
(api/chat.py, the exchange core); the prompt goes to the ``/completions`` route of endpoints that declare
``completions`` among their ``apis``, and api/completions_render.py writes the answer as ``text``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from routeway.api.auth import authenticate
from routeway.api.chat import admit, prompt_estimate
from routeway.api.completions_render import TextCompletions
from routeway.api.http import Request, Response
from routeway.api.served import check_served
from routeway.exchange import stream, whole
from routeway.exchange.core import Exchange
from routeway.ledger.ids import new_generation_id
from routeway.routing.plan import Demand, requested_models, sent_parameters
from routeway.wire.text_completion import parse_completion_request

if TYPE_CHECKING:
    from routeway.services import Services

API = "completions"


def routes(services: Services) -> list[tuple[str, str, Any]]:
    async def completions(request: Request) -> Response | None:
        key = authenticate(services, request, management=False)
        await admit(services, key)
        raw = await request.body(services.settings.max_body_bytes)
        completion = parse_completion_request(raw)
        chat = completion.chat()
        if any(model.endswith(":free") for model in requested_models(chat)):
            await services.throttle.check_free(services.accounts.of_key(key))
        check_served(services.catalog, requested_models(chat), API)
        demand = Demand(await prompt_estimate(services, chat, len(raw)), chat.output_limit, sent_parameters(chat),
                        api=API)
        attempts = services.planner.plan(chat, demand, time.time())
        generation_id = new_generation_id()
        renderer = TextCompletions(request, chat.stream, generation_id, services.settings.keepalive_seconds)
        exchange = Exchange(services, chat, key, attempts, len(raw), request.headers, renderer, generation_id, api=API)
        exchange.upstream_fields = completion.upstream_fields()
        exchange.split_text = False  # a raw prompt's continuation: no dialect reads reasoning or tool calls into it
        if chat.stream:
            await services.throttle.open_stream(key)
        try:
            outcome = await exchange.run(stream.relay if chat.stream else whole.complete)
        finally:
            if chat.stream:
                await services.throttle.close_stream(key)
        return await renderer.finish(outcome)

    return [("POST", "/completions", completions)]
