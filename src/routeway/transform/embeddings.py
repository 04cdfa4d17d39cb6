"""Embeddings between the client and an OpenAI-compatible ``/embeddings`` upstream: the body one endpoint
takes, the upstream's answer read as untrusted input (one finite vector of numbers per input, in order),
the base64 form, and the token estimate for an upstream that reports no usage."""

from __future__ import annotations

import base64
import math
import sys
from array import array
from typing import Any

from routeway.catalog import Endpoint
from routeway.providers import UpstreamError
from routeway.transform.tokens import count_text
from routeway.wire.embeddings import EmbeddingsRequest, Input

MAX_DIMENSIONS = 65_536  # no embedding model comes near it; bounds what one vector may hold


def upstream_body(request: EmbeddingsRequest, inputs: list[Input],
                  endpoint: Endpoint) -> tuple[dict[str, Any], list[str]]:
    """Floats are always asked for (every engine serves them); ``base64`` is routeway's own encoding.
    ``dimensions`` passes only to endpoints that list it in ``supported_parameters``, as chat parameters do."""
    body: dict[str, Any] = {**endpoint.extra_body, "model": endpoint.upstream_model,
                            "input": inputs[0] if isinstance(request.input, str) else inputs,
                            "encoding_format": "float"}
    dropped: list[str] = []
    if request.dimensions is not None:
        if "dimensions" in endpoint.supported_parameters:
            body["dimensions"] = request.dimensions
        else:
            dropped.append("dimensions")
    if request.input_type is not None:
        if "input_type" in endpoint.supported_parameters:
            body["input_type"] = request.input_type
        else:
            dropped.append("input_type")
    if request.user is not None:
        body["user"] = request.user
    return body, dropped


def vectors(answer: dict[str, Any], count: int) -> list[array[float]]:
    """One vector per input, in input order; anything else is a malformed answer (a 502 that falls back)."""
    data = answer.get("data")
    if not isinstance(data, list) or len(data) != count:
        raise UpstreamError(502, f"upstream returned {len(data) if isinstance(data, list) else 'no'} embeddings"
                                 f" for {count} inputs")
    ordered: list[array[float] | None] = [None] * count
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        values = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count \
                or ordered[index] is not None:
            raise UpstreamError(502, f"upstream returned an embedding with a wrong index: {index!r}")
        if not isinstance(values, list) or not values or len(values) > MAX_DIMENSIONS:
            raise UpstreamError(502, "upstream returned an embedding that is not a list of numbers")
        try:
            vector = array("d", values)
        except TypeError:
            raise UpstreamError(502, "upstream returned an embedding that is not a list of numbers") from None
        if not all(map(math.isfinite, vector)):
            raise UpstreamError(502, "upstream returned an embedding with a value that is not finite")
        ordered[index] = vector
    return [v for v in ordered if v is not None]


def wire_vector(vector: array[float], encoding_format: str | None) -> list[float] | str:
    """Floats, or (``base64``) the little-endian float32 bytes in base64, as OpenAI encodes them."""
    if encoding_format != "base64":
        return vector.tolist()
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def estimate_tokens(inputs: list[Input]) -> int:
    """Token ids count themselves; text is estimated (transform/tokens.py)."""
    return sum(len(item) if isinstance(item, list) else count_text(item) for item in inputs)
