"""POST /embeddings: the request, validated for type and range, and the answer's types for the OpenAPI
document (OpenRouter's and OpenAI's shape: a ``list`` of ``embedding`` objects, ``usage`` with ``cost``).

``input`` is a string, a list of strings, a list of token ids or a list of token-id lists; at most
``MAX_INPUTS`` inputs (OpenAI's own limit), token ids within 0 … 2**31 - 1, no empty input. msgspec takes one
array type per union, so the four shapes are told apart here rather than by the decoder.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from routeway.errors import APIError
from routeway.wire.chat import ProviderPreferences
from routeway.wire.decode import decode

MAX_INPUTS = 2048
MAX_TOKEN_ID = 2**31 - 1


class EmbeddingsRequest(Struct, omit_defaults=True):
    input: str | list[Any]
    model: str | None = None
    models: list[str] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Meta(ge=1, le=65_536)] | None = None
    user: Annotated[str, Meta(max_length=256)] | None = None
    input_type: Annotated[str, Meta(max_length=64)] | None = None
    provider: ProviderPreferences | None = None


# One input as the upstream takes it: text, or token ids.
Input = str | list[int]


def parse_embeddings_request(body: bytes) -> tuple[EmbeddingsRequest, list[Input]]:
    """The request and its inputs, one entry per vector asked for."""
    request: EmbeddingsRequest = decode(body, EmbeddingsRequest)
    if not request.model and not request.models:
        raise APIError(400, "Invalid request: `model` is required", metadata={"param": "model"})
    return request, _inputs(request.input)


def _bad(message: str) -> APIError:
    return APIError(400, f"Invalid request: `input` {message}", metadata={"param": "input"})


def _token_ids(value: list[Any], where: str) -> list[int]:
    if not value:
        raise _bad(f"{where}must not be an empty list of token ids")
    for token in value:
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token <= MAX_TOKEN_ID:
            raise _bad(f"{where}must hold token ids (whole numbers from 0 to {MAX_TOKEN_ID}), not {token!r}")
    return value


def _inputs(value: str | list[Any]) -> list[Input]:
    if isinstance(value, str):
        if not value:
            raise _bad("must not be empty")
        return [value]
    if not value:
        raise _bad("must not be an empty list")
    if len(value) > MAX_INPUTS:
        raise _bad(f"holds {len(value):,} inputs; at most {MAX_INPUTS:,} per request")
    if all(isinstance(item, str) for item in value):
        if not all(value):
            raise _bad("must not contain empty strings")
        return list(value)
    if all(isinstance(item, list) for item in value):
        return [_token_ids(item, f"[{i}] ") for i, item in enumerate(value)]
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return [_token_ids(value, "")]
    raise _bad("must be a string, a list of strings, a list of token ids or a list of token-id lists")


# ---- the answer, for the OpenAPI document -----------------------------------------------------------
class Embedding(Struct):
    object: Literal["embedding"]
    embedding: list[float] | str  # floats, or base64 of little-endian float32 (``encoding_format: base64``)
    index: int


class EmbeddingsUsage(Struct, forbid_unknown_fields=False):
    prompt_tokens: int
    total_tokens: int
    cost: float


class EmbeddingsResponse(Struct, forbid_unknown_fields=False):
    id: str
    object: Literal["list"]
    data: list[Embedding]
    model: str
    provider: str | None
    usage: EmbeddingsUsage
