"""GET /openapi.json: generated from the router's table and the wire Structs, covering every route."""

from __future__ import annotations

import httpx
import pytest
import schemathesis

from routeway.api.openapi import build_document
from routeway.api.operations import OPERATIONS

from tests.conftest import Gateway
from tests.support.openapi_doc import routeway_app, routeway_document


def test_every_registered_route_is_in_the_document() -> None:
    app = routeway_app()
    document = build_document(app.router.table)
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert set(app.router.table) == documented
    assert ("GET", "/openapi.json") in documented  # itself too


def test_a_route_without_a_description_stops_the_build_naming_it() -> None:
    table = [*routeway_app().router.table, ("POST", "/brand-new")]
    with pytest.raises(RuntimeError, match="POST /brand-new"):
        build_document(table)


def test_no_description_is_left_over_from_a_removed_route() -> None:
    assert set(OPERATIONS) == set(routeway_app().router.table)


def test_the_document_is_valid_openapi_3_1() -> None:
    document = routeway_document()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()


def test_served_under_both_prefixes_as_built(gateway: Gateway) -> None:
    expected = routeway_document()
    for base in (gateway.api, gateway.url + "/v1"):
        response = httpx.get(base + "/openapi.json")
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert response.json() == expected


def test_request_bounds_come_from_the_wire_structs() -> None:
    schemas = routeway_document()["components"]["schemas"]

    def number(struct: str, field: str) -> dict:
        return next(s for s in schemas[struct]["properties"][field]["anyOf"] if s.get("type") in ("number", "integer"))

    assert number("ChatRequest", "temperature") == {"type": "number", "minimum": 0, "maximum": 2}
    assert number("ChatRequest", "top_logprobs") == {"type": "integer", "minimum": 0, "maximum": 20}
    assert schemas["KeyCreate"]["properties"]["name"] == {"type": "string", "minLength": 1, "maxLength": 200}
    assert schemas["KeyCreate"]["required"] == ["name"]


def test_security_and_error_envelope_per_route() -> None:
    document = routeway_document()
    paths = document["paths"]
    assert set(document["components"]["securitySchemes"]) == {"apiKey", "managementKey", "operatorKey"}
    assert paths["/chat/completions"]["post"]["security"] == [{"apiKey": []}]
    assert paths["/keys"]["post"]["security"] == [{"managementKey": []}]
    assert paths["/credits"]["get"]["security"] == [{"apiKey": []}, {"managementKey": []}]
    assert paths["/admin/accounts"]["get"]["security"] == [{"operatorKey": []}]
    assert paths["/models"]["get"]["security"] == []
    for path, item in paths.items():
        # Anthropic's Messages routes answer errors in Anthropic's shape, which its clients parse
        error = {"$ref": "#/components/schemas/" + ("AnthropicError" if path.startswith("/messages") else "ErrorResponse")}
        for method, operation in item.items():
            statuses = {int(s) for s in operation["responses"]}
            if operation["security"]:
                assert 401 in statuses, (method, path)
            if "requestBody" in operation:
                assert {400, 413} <= statuses, (method, path)
            for status in statuses - {200, 201}:
                assert operation["responses"][str(status)]["content"]["application/json"]["schema"] == error
    assert {402, 429, 502, 503} <= {int(s) for s in paths["/chat/completions"]["post"]["responses"]}
    chat = paths["/chat/completions"]["post"]["responses"]
    assert "text/event-stream" in chat["200"]["content"] and "X-Generation-Id" in chat["200"]["headers"]
    assert "Retry-After" in chat["429"]["headers"] and "Retry-After" in chat["503"]["headers"]
