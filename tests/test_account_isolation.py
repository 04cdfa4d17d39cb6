"""Isolation between accounts (SECURITY.md): no key of one account reads or changes anything of another."""

from __future__ import annotations

import httpx

from routeway.ledger.accounts import hash_key

from tests.conftest import Gateway


def call(gateway: Gateway, method: str, path: str, key: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, gateway.api + path, timeout=30, headers={"authorization": f"Bearer {key}"},
                         **kwargs)  # type: ignore[arg-type]


def test_no_key_reaches_another_accounts_generations_keys_or_credits(gateway: Gateway) -> None:
    alice, mallory = gateway.account(credits=5.0, name="alice"), gateway.account(credits=1.0, name="mallory")
    answer = alice.chat({"model": "test/echo", "messages": [{"role": "user", "content": "private words"}],
                         "max_tokens": 20})
    assert answer.status_code == 200, answer.text
    generation_id = answer.headers["x-generation-id"]
    assert call(gateway, "GET", "/generation", alice.api_key, params={"id": generation_id}).status_code == 200

    for key in (mallory.api_key, mallory.management_key):
        stolen = call(gateway, "GET", "/generation", key, params={"id": generation_id})
        assert stolen.status_code == 404 and "private words" not in stolen.text
        assert stolen.json()["error"]["metadata"]["error_type"] == "not_found"

    target = hash_key(alice.api_key)
    for method, body in (("GET", None), ("PATCH", {"disabled": True}), ("PATCH", {"limit": 0}), ("DELETE", None)):
        refused = call(gateway, method, f"/keys/{target}", mallory.management_key, json=body)
        assert refused.status_code == 404, (method, refused.text)
    listed = call(gateway, "GET", "/keys", mallory.management_key).json()["data"]
    assert target not in {k["hash"] for k in listed}
    assert alice.chat({"model": "test/echo", "messages": [{"role": "user", "content": "still mine"}],
                       "max_tokens": 5}).status_code == 200  # untouched: not disabled, not deleted, no limit

    credits = call(gateway, "GET", "/credits", mallory.api_key).json()["data"]
    assert credits["total_credits"] == 1.0 and credits["total_usage"] == 0.0
    for key in (mallory.api_key, mallory.management_key):  # tenants' keys are not the operator's
        assert call(gateway, "GET", f"/admin/accounts/{alice.id}", key).status_code == 401
