"""POST /embeddings and GET /embeddings/models. An embeddings request is authenticated, limited, reserved
(its inputs only), routed with fallbacks and settled by the exchange core as a chat request is; the
upstream is an OpenAI-compatible ``/embeddings`` route of an endpoint that declares ``embeddings`` among
its ``apis`` (a model whose ``output_modalities`` hold ``embeddings`` declares it for its endpoints)."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

from routeway.api.auth import authenticate
from routeway.api.chat import admit
from routeway.api.chat_render import ChatCompletions, _usage
from routeway.api.http import Request, Response, json_response
from routeway.api.served import check_served
from routeway.api.views import model_view
from routeway.exchange.core import Exchange
from routeway.exchange.embed import vectors
from routeway.exchange.events import Outcome
from routeway.ledger.ids import new_generation_id
from routeway.routing.plan import Demand, requested_models
from routeway.transform.embeddings import estimate_tokens
from routeway.wire.chat import ChatRequest
from routeway.wire.embeddings import parse_embeddings_request

if TYPE_CHECKING:
    from routeway.services import Services

API = "embeddings"


class EmbeddingsAnswer(ChatCompletions):
    """A whole answer only (embeddings do not stream): the chat renderer's status line and keepalives
    (whitespace before a slow JSON answer), then the list of vectors."""

    __slots__ = ()

    async def finish(self, outcome: Outcome) -> Response | None:
        if outcome.cancelled:
            return None
        if outcome.failure is not None:  # headers went out as 200 already: the error travels in the body
            body = json_response(outcome.failure.body()).body
        else:
            assert outcome.vectors is not None
            usage = _usage(outcome)
            payload = {"id": outcome.id, "object": "list", "data": outcome.vectors.data, "model": outcome.model,
                       "provider": outcome.provider,
                       "usage": {"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["prompt_tokens"],
                                 "cost": usage["cost"], "is_byok": False}}
            self._add_metadata(payload, outcome)
            if not self.committed:
                return json_response(payload, extra_headers={"x-generation-id": self.generation_id})
            body = json_response(payload).body
        await self.request.send({"type": "http.response.body", "body": body, "more_body": False})
        return None


def routes(services: Services) -> list[tuple[str, str, Any]]:
    catalog = services.catalog

    async def create(request: Request) -> Response | None:
        key = authenticate(services, request, management=False)
        await admit(services, key)
        raw = await request.body(services.settings.max_body_bytes)
        embedding, inputs = parse_embeddings_request(raw)
        # routing and the core read a chat request: the models, the preferences, and one output token at
        # most (nothing is generated), so the reservation is the inputs' worst case alone
        chat = ChatRequest(model=embedding.model, models=embedding.models, provider=embedding.provider, max_tokens=1)
        if any(model.endswith(":free") for model in requested_models(chat)):
            await services.throttle.check_free(services.accounts.of_key(key))
        check_served(catalog, requested_models(chat), API)
        longest = max(len(i) if isinstance(i, list) else len(i.encode()) // 4 + 1 for i in inputs)
        demand = Demand(longest, None, ["dimensions"] if embedding.dimensions is not None else [], api=API)
        attempts = services.planner.plan(chat, demand, time.time())
        generation_id = new_generation_id()
        renderer = EmbeddingsAnswer(request, False, generation_id, services.settings.keepalive_seconds)
        exchange = Exchange(services, chat, key, attempts, len(raw), request.headers, renderer, generation_id, api=API)
        exchange.prompts = len(inputs)
        exchange.count_prompt = partial(estimate_tokens, inputs)
        outcome = await exchange.run(partial(vectors, request=embedding, inputs=inputs))
        return await renderer.finish(outcome)

    async def list_models(request: Request) -> Response:
        data = [model_view(m, catalog.endpoints_for(m.id)) for m in catalog.models.values()
                if "embeddings" in m.output_modalities]
        return json_response({"data": data, "total_count": len(data), "links": {"next": None}})

    return [("POST", "/embeddings", create), ("GET", "/embeddings/models", list_models)]
