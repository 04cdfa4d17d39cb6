"""GET /generation?id=: the stored record of one generation, for its own account only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routeway.api.auth import authenticate
from routeway.api.http import Request, Response, json_response
from routeway.api.views import generation_view
from routeway.errors import APIError
from routeway.store.generations import GenerationRepository

if TYPE_CHECKING:
    from routeway.services import Services


def routes(services: Services) -> list[tuple[str, str, Any]]:
    generations = GenerationRepository(services.store)

    async def get_generation(request: Request) -> Response:
        key = authenticate(services, request)
        generation_id = request.query.get("id")
        if not generation_id:
            raise APIError(400, "Invalid request: query parameter `id` is required (the `id` of a chat response)",
                           metadata={"param": "id"})
        record = await generations.get(generation_id, key.account_id)
        if record is None:
            raise APIError(404, f"Generation {generation_id} not found for this account.")
        return json_response({"data": generation_view(record)})

    return [("GET", "/generation", get_generation)]
