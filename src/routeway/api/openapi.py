"""GET /openapi.json: routeway's own OpenAPI 3.1 document, built once at start-up from the router's table.

Schemas come from the wire types (msgspec Structs → JSON Schema with ``msgspec.json.schema_components``),
so a bound added to a Struct shows in the document without further edits. Each route's description is
in api/operations.py; a registered route without one stops start-up with a message naming it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from routeway import __version__
from routeway.api.http import Handler, Request, Response, Router
from routeway.api.operations import ANY_KEY, API, MANAGEMENT, OPERATIONS, OPERATOR, Operation
from routeway.wire.errors import ErrorResponse

PATH = "/openapi.json"
REF = "#/components/schemas/{name}"

SECURITY_SCHEMES = {
    "apiKey": {"type": "http", "scheme": "bearer",
               "description": "An API key (`sk-rw-v1-…`): inference and reading its own account."},
    "managementKey": {"type": "http", "scheme": "bearer",
                      "description": "A management key: creates and manages the account's API keys; no inference."},
    "operatorKey": {"type": "http", "scheme": "bearer",
                    "description": "The operator key, ROUTEWAY_ADMIN_KEY: the /admin API over every account."},
}
SECURITY: dict[str | None, list[dict[str, list[str]]]] = {API: [{"apiKey": []}], MANAGEMENT: [{"managementKey": []}],
            ANY_KEY: [{"apiKey": []}, {"managementKey": []}], OPERATOR: [{"operatorKey": []}], None: []}


def sse_event(chunk: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.1 reads a text/event-stream schema as one event's: each `data` is a JSON chunk, the last `[DONE]`."""
    data = {"anyOf": [{"const": "[DONE]"},
                      {"type": "string", "contentMediaType": "application/json", "contentSchema": chunk}]}
    return {"type": "object", "required": ["data"], "properties": {"data": data}}


ERRORS = {
    400: "Invalid request: a field, query parameter or JSON body is wrong (`metadata.param` names it)",
    401: "Missing, invalid, disabled or expired key",
    402: "Not enough credit (or key limit left) for the request's worst-case cost",
    403: "The key is of the wrong kind for this route",
    404: "Not found",
    408: "No endpoint answered in time",
    413: "The request body is larger than `max_body_bytes`",
    422: "The upstream could not process the request",
    429: "Rate limited (`Retry-After` says when to retry)",
    502: "Every upstream attempt failed or answered malformed",
    503: "No provider can serve the model now (`Retry-After` when it is temporary)",
}

TEXT = {"schema": {"type": "string"}}
ERROR_HEADERS = {  # sent where they apply, so none is required
    429: {"Retry-After": {"description": "Seconds to wait (or the upstream's own value)", **TEXT},
          "X-RateLimit-Limit": {"description": "The limit that was hit (routeway's own limits)", **TEXT},
          "X-RateLimit-Remaining": {"description": "Requests left in its window", **TEXT},
          "X-RateLimit-Reset": {"description": "When its window resets, epoch ms", **TEXT}},
    503: {"Retry-After": {"description": "Seconds until an endpoint may take requests again", **TEXT}},
}
SUCCESS_HEADERS = {"X-Generation-Id": {"description": "The `id` of the generation, for GET /generation", **TEXT}}


def install(router: Router[Handler]) -> None:
    """Register GET /openapi.json, then build the document of every route the router has (itself too)."""
    document = b""

    async def openapi_json(request: Request) -> Response:
        return Response(document)

    router.add("GET", PATH, openapi_json)
    document = msgspec.json.encode(build_document(router.table))


def build_document(table: list[tuple[str, str]]) -> dict[str, Any]:
    missing = [f"{method} {path}" for method, path in table if (method, path) not in OPERATIONS]
    if missing:
        raise RuntimeError(f"routes without a description in routeway/api/operations.py: {', '.join(missing)}")
    operations = [(method, path, OPERATIONS[(method, path)]) for method, path in table]
    wire_types = (t for _, _, op in operations for t in (op.answer, op.body, op.stream_chunk) if t is not None)
    types = list(dict.fromkeys([ErrorResponse, *wire_types, *(op.error_answer for _, _, op in operations)]))
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    refs = dict(zip(types, schemas, strict=True))  # one schema per type
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in operations:
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "routeway", "version": __version__,
                 "description": "A self-hostable OpenRouter: OpenRouter's and OpenAI's API over your models."
                                " Every error is `{\"error\": {\"code\", \"message\", \"metadata\"}}`."},
        "servers": [{"url": "/api/v1"}, {"url": "/v1", "description": "the same routes, for OpenAI clients"}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _operation(method: str, path: str, op: Operation, refs: dict[type, dict[str, Any]]) -> dict[str, Any]:
    answer: dict[str, Any] = refs[op.answer] if op.answer else {"type": "object"}
    if op.error_in_body:
        answer = {"anyOf": [answer, refs[op.error_answer]]}
    content: dict[str, Any] = {"application/json": {"schema": answer}}
    if op.stream_chunk is not None:
        content["text/event-stream"] = {"schema": sse_event(refs[op.stream_chunk])}
    responses: dict[str, Any] = {str(op.status): {"description": op.summary, "content": content}}
    if op.stream_chunk is not None:  # a generation: its id travels in a header too
        responses[str(op.status)]["headers"] = SUCCESS_HEADERS
    for status in sorted(_error_statuses(path, op)):
        responses[str(status)] = {"description": ERRORS[status],
                                  "content": {"application/json": {"schema": refs[op.error_answer]}}}
        if status in ERROR_HEADERS:
            responses[str(status)]["headers"] = ERROR_HEADERS[status]
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                  for name in re.findall(r"\{(\w+)\}", path)]
    parameters += [{"name": q.name, "in": "query", "required": q.required, "schema": q.schema,
                    "description": q.description} for q in op.query]
    result: dict[str, Any] = {
        "operationId": re.sub(r"\W+", "_", f"{method.lower()}{path}").strip("_"),
        "summary": op.summary, "security": SECURITY[op.security], "responses": responses,
    }
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        media: dict[str, Any] = {"schema": refs[op.body]}
        if op.examples:
            media["examples"] = {f"example{i}": {"value": value} for i, value in enumerate(op.examples, 1)}
        result["requestBody"] = {"required": True, "content": {"application/json": media}}
    return result


def _error_statuses(path: str, op: Operation) -> set[int]:
    statuses = set(op.errors)
    if op.security is not None:
        statuses.add(401)
    if op.security in (API, MANAGEMENT):
        statuses.add(403)  # the other kind of account key
    if op.body is not None:
        statuses |= {400, 413}
    if any(q.schema.get("type") == "integer" for q in op.query):
        statuses.add(400)
    if "{" in path:
        statuses.add(404)
    return statuses
