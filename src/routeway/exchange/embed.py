"""The embeddings half of an exchange: fetch the first whole answer (falling back until one comes, with
keepalives to the client meanwhile), read its vectors and its usage — input tokens only."""

from __future__ import annotations

from array import array
from typing import Any

from routeway.exchange.core import Exchange
from routeway.exchange.events import Vectors
from routeway.exchange.whole import checked_usage, first_whole
from routeway.providers import embed
from routeway.routing.plan import Attempt
from routeway.transform import embeddings
from routeway.transform.usage import UsageCounts
from routeway.wire.embeddings import EmbeddingsRequest, Input


async def vectors(ex: Exchange, request: EmbeddingsRequest, inputs: list[Input]) -> Vectors | None:
    """The vectors, or None when the client left first (the record is then cancelled: the upstream
    read the inputs, so they are billed, estimated)."""
    async def fetch(attempt: Attempt, entry: dict[str, Any]) -> tuple[list[array[float]], UsageCounts | None, Any]:
        body, entry["dropped_parameters"] = embeddings.upstream_body(request, inputs, attempt.endpoint)
        answer = await embed(ex.services.adapters[attempt.endpoint.provider.name], attempt.endpoint, body)
        entry["status"] = 200  # an adapter answers only a 200 (any other status is an UpstreamError)
        found = embeddings.vectors(answer, len(inputs))
        return found, checked_usage(ex, attempt, answer.get("usage")), answer.get("id")

    result = await first_whole(ex, fetch)
    if result is None:
        return None
    assert ex.record is not None
    found, usage, upstream_id = result
    ex.record.upstream_id = upstream_id if isinstance(upstream_id, str) else None
    if usage is not None:
        usage.completion = usage.reasoning = 0  # an embedding produces no tokens: only its input is billed
    ex.usage = usage  # None: the core estimates the inputs (ex.count_prompt)
    ex.finish = "stop"
    return Vectors([{"object": "embedding", "embedding": embeddings.wire_vector(vector, request.encoding_format),
                     "index": index} for index, vector in enumerate(found)])
