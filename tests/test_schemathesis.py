"""schemathesis against a real routeway, driven by routeway's own OpenAPI document.

The document is built in-process at collection (tests/support/openapi_doc.py; tests/test_openapi.py
checks it is what GET /openapi.json serves): schemathesis's lazy fixture loader
(``schemathesis.pytest.from_fixture``) reads ``Function._nodeid``, which pytest 9.2 no longer has.

Every operation is called with generated valid and invalid input (schemathesis's examples, coverage and
fuzzing phases), with a real key of the kind its security scheme names: an API key for inference, a
management key for /keys, the operator key for /admin. Checks: no 5xx; status codes, content types and
bodies as documented; every 4xx/5xx body in OpenRouter's error envelope (Anthropic's on /messages); authentication not ignored; a
405 names the allowed methods. Bounded (max_examples per operation, derandomized) to about a minute or two.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.conftest import ADMIN_KEY, Gateway
from tests.support.openapi_doc import routeway_document

MAX_EXAMPLES = 300  # generated cases per operation (explicit examples, coverage and fuzzing together)

CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
          "response_headers_conformance", "ignored_auth", "unsupported_method", "allow_header_conformance"]
# positive_data_acceptance / negative_data_rejection assume a strict API; routeway ignores unknown fields
# (as OpenRouter does) and a random but well-typed `model` is a 400, so both are off.


schema = schemathesis.openapi.from_dict(routeway_document(), config=SchemathesisConfig.from_dict({
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    "request-timeout": 10,
}))


TOKENS: dict[str, str] = {}  # security scheme -> a real key of that kind, filled by the `tokens` fixture


@pytest.fixture(scope="module")
def tokens(gateway: Gateway) -> dict[str, str]:
    account = gateway.account(credits=50.0, name="schemathesis")
    TOKENS.update(apiKey=account.api_key, managementKey=account.management_key, operatorKey=ADMIN_KEY)
    return TOKENS


@schema.auth(refresh_interval=None)  # no caching: the keys exist only once the fixture ran
class RoutewayKeys:
    """Each operation gets a key of the first kind its `security` names (schemathesis knows it is
    explicit auth, so ignored_auth probes the operation without it and with a wrong one)."""

    def get(self, case: Any, ctx: Any) -> str | None:
        security = case.operation.definition.raw.get("security") or []
        return TOKENS.get(next(iter(security[0]))) if security else None

    def set(self, case: Any, token: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


def error_envelope(ctx: Any, response: Any, case: Any) -> None:
    """Every error answer is {"error": {"code", "message", "metadata": {"error_type", …}}} with code = status."""
    if response.status_code < 400:
        return
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.headers
    body = response.json()
    # Anthropic's Messages routes answer in Anthropic's error shape; a method they do not take is refused by
    # the router, before any route, in the envelope below
    if case.operation.path.startswith("/messages") and response.status_code != 405:
        assert body["type"] == "error" and isinstance(body["error"]["type"], str) and body["error"]["message"], body
        return
    error = body["error"]
    assert error["code"] == response.status_code, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["metadata"]["error_type"], str), body


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_holds_to_the_document(case: Any, gateway: Gateway, tokens: dict[str, str]) -> None:
    case.call_and_validate(base_url=gateway.api, additional_checks=[error_envelope])
