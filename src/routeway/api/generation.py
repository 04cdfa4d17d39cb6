"""GET /generation?id=: the stored record of one generation, for its own account only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routeway.api.auth import authenticate
from routeway.api.http import Request, Response, json_response
from routeway.api.views import GENERATION_COLUMNS, generation_view
from routeway.errors import APIError

if TYPE_CHECKING:
    from routeway.app import Services


def routes(services: Services) -> list[tuple[str, str, Any]]:
    async def get_generation(request: Request) -> Response:
        key = authenticate(services, request)
        generation_id = request.query.get("id")
        if not generation_id:
            raise APIError(400, "Invalid request: query parameter `id` is required (the `id` of a chat response)",
                           metadata={"param": "id"})
        rows = await services.store.fetch(
            f"SELECT {', '.join(GENERATION_COLUMNS)} FROM generations WHERE id = ? AND account_id = ?",
            (generation_id, key.account_id))
        if not rows:
            raise APIError(404, f"Generation {generation_id} not found for this account.")
        return json_response({"data": generation_view(rows[0])})

    return [("GET", "/generation", get_generation)]
