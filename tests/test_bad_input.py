"""Bad input gets OpenRouter's error shape and the right status; nothing is recorded or charged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import Account

GOOD = {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


def assert_error(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and isinstance(error["message"], str) and "metadata" in error
    for word in words:
        assert word in error["message"]
    return error


def assert_untouched(account: Account) -> None:
    assert account.generations() == []
    state = account.state()
    assert state["total_usage"] == 0 and state["reserved"] == 0 and state["balance"] == pytest.approx(10.0)


@pytest.mark.parametrize(("body", "field"), [
    ({**GOOD, "temperature": 3}, "temperature"),
    ({**GOOD, "temperature": "hot"}, "temperature"),
    ({**GOOD, "top_p": 1.5}, "top_p"),
    ({**GOOD, "max_tokens": 0}, "max_tokens"),
    ({**GOOD, "max_tokens": "ten"}, "max_tokens"),
    ({**GOOD, "top_k": -1}, "top_k"),
    ({**GOOD, "frequency_penalty": -2.5}, "frequency_penalty"),
    ({**GOOD, "repetition_penalty": 0}, "repetition_penalty"),
    ({**GOOD, "top_logprobs": 30, "logprobs": True}, "top_logprobs"),
    ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({**GOOD, "stream": "yes"}, "stream"),
    ({**GOOD, "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({**GOOD, "response_format": {"type": "yaml"}}, "response_format.type"),
    ({**GOOD, "messages": []}, "messages"),
    ({**GOOD, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({**GOOD, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({**GOOD, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": GOOD["messages"]}, "model"),
])
def test_invalid_fields_are_400_naming_the_field(account: Account, body: dict, field: str) -> None:
    error = assert_error(account.chat(body), 400, field.split(".")[-1].split("[")[0])
    assert error["metadata"]["error_type"] == "invalid_request"
    assert error["metadata"].get("param", "").startswith(field.split("[")[0].split(".")[0])
    assert_untouched(account)


def test_malformed_json(account: Account) -> None:
    response = httpx.post(account.gateway.api + "/chat/completions", content=b'{"model": "test/echo", "messages": [',
                          headers={"authorization": f"Bearer {account.api_key}", "content-type": "application/json"})
    assert_error(response, 400, "not valid JSON")
    assert_untouched(account)


def test_unknown_model(account: Account) -> None:
    error = assert_error(account.chat({**GOOD, "model": "nobody/nothing"}), 400, "nobody/nothing")
    assert error["metadata"]["availability"]["code"] == "model_not_found"
    assert_untouched(account)


def test_catalog_model_without_provider_is_503_saying_how_to_add_one(account: Account) -> None:
    error = assert_error(account.chat({**GOOD, "model": "openai/gpt-4o"}), 503, "openai/gpt-4o", "[[providers]]")
    assert error["metadata"]["availability"]["code"] == "no_endpoints"
    assert_untouched(account)


def test_body_over_the_limit(account: Account) -> None:
    big = {**GOOD, "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert_error(account.chat(big), 413, "limit")
    assert_untouched(account)


def test_missing_and_invalid_keys(account: Account) -> None:
    url = account.gateway.api + "/chat/completions"
    assert_error(httpx.post(url, json=GOOD), 401, "Missing API key")
    assert_error(httpx.post(url, json=GOOD, headers={"authorization": "Bearer sk-rw-v1-nope"}), 401, "Invalid API key")
    assert_error(httpx.post(url, json=GOOD, headers={"authorization": "Basic abc"}), 401)
    assert_error(account.chat(GOOD, key=account.management_key), 403, "Management keys")
    assert_untouched(account)


def test_disabled_and_expired_keys(account: Account) -> None:
    management = {"authorization": f"Bearer {account.management_key}"}
    api = account.gateway.api
    created = httpx.post(api + "/keys", json={"name": "soon"}, headers=management).json()
    httpx.patch(api + f"/keys/{created['data']['hash']}", json={"disabled": True}, headers=management)
    assert_error(account.chat(GOOD, key=created["key"]), 401, "disabled")
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    expiring = httpx.post(api + "/keys", json={"name": "brief", "expires_at": soon}, headers=management).json()
    import time
    time.sleep(1.2)
    assert_error(account.chat(GOOD, key=expiring["key"]), 401, "expired")
    assert_error(httpx.post(api + "/keys", json={"name": "past", "expires_at": "2001-01-01T00:00:00Z"},
                            headers=management), 400, "future")
    assert_untouched(account)


def test_management_api_validation(account: Account) -> None:
    management = {"authorization": f"Bearer {account.management_key}"}
    api = account.gateway.api
    assert_error(httpx.post(api + "/keys", json={"name": ""}, headers=management), 400, "name")
    assert_error(httpx.post(api + "/keys", json={"name": "x", "limit": -1}, headers=management), 400, "limit")
    assert_error(httpx.post(api + "/keys", json={"name": "x", "limit_reset": "hourly"}, headers=management), 400)
    assert_error(httpx.get(api + "/keys/deadbeef", headers=management), 404)
    assert_error(httpx.get(api + "/generation", headers=management), 400, "id")
    assert_error(httpx.get(api + "/generation", params={"id": "gen-nope"}, headers=management), 404)
    assert_error(httpx.get(api + "/nothing-here", headers=management), 404)
    assert_error(httpx.delete(api + "/credits", headers=management), 405)


def test_operator_api_needs_the_operator_key(account: Account) -> None:
    api = account.gateway.api
    assert_error(httpx.get(api + "/admin/accounts"), 401)
    assert_error(httpx.get(api + "/admin/accounts", headers={"authorization": f"Bearer {account.management_key}"}), 401)
    assert_error(account.gateway.admin("POST", f"/admin/accounts/{account.id}/credits", {"amount": -11}), 400, "cannot remove")
    assert_error(account.gateway.admin("GET", "/admin/accounts/acct-missing"), 404)
