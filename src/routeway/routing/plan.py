"""The ordered attempts for one request: the model, then its ``models`` fallbacks, each with the
endpoints that may serve it, honouring ``provider.order``, ``only``, ``ignore`` and ``allow_fallbacks``."""

from __future__ import annotations

from dataclasses import dataclass

from routeway.catalog import Catalog, Endpoint, ModelInfo
from routeway.errors import APIError
from routeway.wire.chat import ChatRequest


@dataclass(frozen=True, slots=True)
class Attempt:
    model: ModelInfo
    endpoint: Endpoint


def requested_models(chat: ChatRequest) -> list[str]:
    ids: list[str] = []
    for model_id in ([chat.model] if chat.model else []) + (chat.models or []):
        if model_id not in ids:
            ids.append(model_id)
    return ids


def plan(catalog: Catalog, chat: ChatRequest) -> list[Attempt]:
    attempts: list[Attempt] = []
    unknown: list[str] = []
    unserved: list[str] = []
    prefs = chat.provider
    for model_id in requested_models(chat):
        model = catalog.get(model_id)
        if model is None:
            unknown.append(model_id)
            continue
        endpoints = list(catalog.endpoints_for(model_id))
        if not endpoints:
            unserved.append(model_id)
            continue
        if prefs is not None:
            endpoints = _apply_preferences(endpoints, prefs)
        attempts.extend(Attempt(model, endpoint) for endpoint in endpoints)
    if attempts:
        return attempts
    if unknown and not unserved:
        raise APIError(400, f"{unknown[0]} is not a valid model ID; list models with GET /api/v1/models",
                       error_type="invalid_request", metadata={"availability": {"code": "model_not_found"}})
    if unserved:
        raise APIError(503, f"No provider serves {unserved[0]} yet. Add a [[providers]] entry and an [[endpoints]]"
                       f" entry for it to your routeway config (see routeway.example.toml), or set an upstream key such"
                       f" as OPENROUTER_API_KEY, then restart routeway.",
                       error_type="provider_unavailable", metadata={"availability": {"code": "no_endpoints"}})
    raise APIError(404, "No endpoints found matching your provider preferences (order/only/ignore).",
                   error_type="not_found", metadata={"availability": {"code": "constraint_filtered"}})


def _apply_preferences(endpoints: list[Endpoint], prefs) -> list[Endpoint]:  # type: ignore[no-untyped-def]
    if prefs.only:
        endpoints = [e for e in endpoints if e.tag in prefs.only]
    if prefs.ignore:
        endpoints = [e for e in endpoints if e.tag not in prefs.ignore]
    if prefs.order:
        rank = {slug: i for i, slug in enumerate(prefs.order)}
        first = sorted((e for e in endpoints if e.tag in rank), key=lambda e: rank[e.tag])
        rest = [e for e in endpoints if e.tag not in rank]
        endpoints = first if prefs.allow_fallbacks is False else first + rest
    return endpoints
