"""GET /models, /models/{author}/{slug}/endpoints, /providers: the catalog as OpenRouter shows it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from routeway.api import model_query
from routeway.api.http import Request, Response, json_response
from routeway.api.messages import anthropic_models
from routeway.api.views import architecture, endpoint_view, model_view
from routeway.errors import APIError

if TYPE_CHECKING:
    from routeway.services import Services


def routes(services: Services) -> list[tuple[str, str, Any]]:
    catalog = services.catalog

    async def list_models(request: Request) -> Response:
        if "anthropic-version" in request.headers:  # Claude Code's model picker reads Anthropic's list shape
            return anthropic_models(services, request)
        models = await model_query.sorted_models(services, request, model_query.matching(services, request))
        offset, limit = request.query_int("offset", 0), request.query_int("limit", 1000)
        page = [model_view(m, catalog.endpoints_for(m.id)) for m in models[offset:offset + limit]]
        following = None
        if offset + limit < len(models):
            query = {**request.query, "offset": str(offset + limit), "limit": str(limit)}
            following = f"/api/v1/models?{urlencode(query)}"
        return json_response({"data": page, "total_count": len(models), "links": {"next": following}})

    async def count_models(request: Request) -> Response:
        return json_response({"data": {"count": len(model_query.matching(services, request))}})

    async def list_endpoints(request: Request) -> Response:
        now = time.time()
        model_id = f"{request.path_params['author']}/{request.path_params['slug']}"
        model = catalog.get(model_id)
        if model is None:
            raise APIError(404, f"Model {model_id} is not in the catalog; list models with GET /api/v1/models.")
        return json_response({"data": {
            "id": model.id, "name": model.name, "created": model.created, "description": model.description,
            "architecture": architecture(model),
            "endpoints": [endpoint_view(e, services.health.of(e.key), now) for e in catalog.endpoints_for(model.id)],
        }})

    async def list_providers(request: Request) -> Response:
        return json_response({"data": [
            {"name": p.label, "slug": p.name, "privacy_policy_url": None, "terms_of_service_url": None,
             "status_page_url": None}
            for p in services.settings.providers
        ]})

    return [
        ("GET", "/models", list_models),
        ("GET", "/models/count", count_models),
        ("GET", "/models/{author}/{slug}/endpoints", list_endpoints),
        ("GET", "/providers", list_providers),
    ]
