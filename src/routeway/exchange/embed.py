"""The embeddings half of an exchange: fetch the first whole answer (falling back until one comes, with
keepalives to the client meanwhile), read its vectors and its usage — input tokens only."""

from __future__ import annotations

import time
from array import array
from typing import Any

from routeway.exchange.core import Exchange
from routeway.exchange.events import Vectors
from routeway.providers import UpstreamError, embed
from routeway.routing.plan import Attempt
from routeway.transform import embeddings
from routeway.transform.usage import MalformedUsage, UsageCounts
from routeway.wire.embeddings import EmbeddingsRequest, Input


async def vectors(ex: Exchange, request: EmbeddingsRequest, inputs: list[Input]) -> Vectors | None:
    """The vectors, or None when the client left first (the record is then cancelled: the upstream
    read the inputs, so they are billed, estimated)."""
    async def fetch(attempt: Attempt, entry: dict[str, Any]) -> tuple[list[array[float]], UsageCounts | None, Any]:
        body, entry["dropped_parameters"] = embeddings.upstream_body(request, inputs, attempt.endpoint)
        answer = await embed(ex.services.adapters[attempt.endpoint.provider.name], attempt.endpoint, body)
        entry["status"] = 200  # an adapter answers only a 200 (any other status is an UpstreamError)
        found = embeddings.vectors(answer, len(inputs))
        try:
            usage = UsageCounts.from_upstream(answer.get("usage"))
        except MalformedUsage as bad:
            ex.note_usage_rejected(attempt, bad.reason)
            raise UpstreamError(502, f"upstream answered with malformed usage: {bad}") from None
        return found, usage, answer.get("id")

    finished, result = await ex.client.unless_gone(ex.first_answer(fetch), keepalive=True)
    assert ex.record is not None or not finished
    if not finished:
        ex.client_left = True
        if ex.record is not None:
            ex.record.cancelled = True
        return None
    assert result is not None and ex.record is not None
    found, usage, upstream_id = result
    ex.first_token = time.monotonic()
    ex.record.upstream_id = upstream_id if isinstance(upstream_id, str) else None
    if usage is not None:
        usage.completion = usage.reasoning = 0  # an embedding produces no tokens: only its input is billed
    ex.usage = usage  # None: the core estimates the inputs (ex.count_prompt)
    ex.finish = "stop"
    return Vectors([{"object": "embedding", "embedding": embeddings.wire_vector(vector, request.encoding_format),
                     "index": index} for index, vector in enumerate(found)])
