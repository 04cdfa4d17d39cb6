"""What a management key may do to other keys (issue 11 item 6). As on OpenRouter, a management
(provisioning) key manages the API keys of its account; management keys themselves — its peers and
itself — are the operator's (admin API and CLI): to a management key they do not exist (404)."""

from __future__ import annotations

import httpx
import pytest
from openrouter import OpenRouter
from openrouter.utils import RetryConfig

from routeway.ledger.accounts import hash_key

from tests.conftest import Account
from tests.support.dashboard_client import signed_in


def call(account: Account, method: str, path: str, key: str, json: object = None) -> httpx.Response:
    return httpx.request(method, account.gateway.api + path, json=json, timeout=30,
                         headers={"authorization": f"Bearer {key}"})


def test_management_keys_are_invisible_to_management_keys(account: Account) -> None:
    peer = account.gateway.admin("POST", f"/admin/accounts/{account.id}/keys", {"name": "peer"}).json()["key"]
    mine = account.management_key
    for target in (hash_key(peer), hash_key(mine)):
        for method, body in (("GET", None), ("PATCH", {"disabled": True}), ("PATCH", {"disabled": False}),
                             ("PATCH", {"name": "taken", "limit": 1}), ("DELETE", None)):
            answer = call(account, method, f"/keys/{target}", mine, body)
            assert answer.status_code == 404, (method, body, answer.text)
            error = answer.json()["error"]
            assert error["code"] == 404 and error["metadata"]["error_type"] == "not_found"
    # nothing changed: both management keys still work and keep their names
    for key in (peer, mine):
        assert call(account, "GET", "/keys", key).status_code == 200
    listed = account.gateway.admin("GET", f"/admin/accounts/{account.id}/keys").json()["data"]
    names = {k["hash"]: k["name"] for k in listed}
    assert names[hash_key(peer)] == "peer" and names[hash_key(mine)] == "mgmt"
    # the account's API keys stay manageable
    assert call(account, "GET", f"/keys/{hash_key(account.api_key)}", mine).status_code == 200


def test_a_management_key_creates_only_api_keys(account: Account) -> None:
    created = call(account, "POST", "/keys", account.management_key, {"name": "sneaky", "management": True})
    assert created.status_code == 201, created.text
    secret = created.json()["key"]
    refused = call(account, "GET", "/keys", secret)  # an API key: it cannot manage keys
    assert refused.status_code == 403 and refused.json()["error"]["metadata"]["error_type"] == "permission_denied"
    assert call(account, "GET", f"/keys/{hash_key(secret)}", account.management_key).status_code == 200


def test_openrouter_sdk_sees_no_management_keys(account: Account) -> None:
    peer = account.gateway.admin("POST", f"/admin/accounts/{account.id}/keys", {"name": "peer"}).json()["key"]
    admin = OpenRouter(api_key=account.management_key, server_url=account.gateway.api,
                       retry_config=RetryConfig("none", None, False))
    listed = {k.hash for k in admin.api_keys.list(include_disabled=True).data}
    assert hash_key(peer) not in listed and hash_key(account.management_key) not in listed
    for target in (hash_key(peer), hash_key(account.management_key)):
        with pytest.raises(Exception) as missing:
            admin.api_keys.get(hash=target)
        assert getattr(missing.value, "status_code", None) == 404
        with pytest.raises(Exception) as unchanged:
            admin.api_keys.update(hash=target, disabled=False)
        assert getattr(unchanged.value, "status_code", None) == 404
        with pytest.raises(Exception) as kept:
            admin.api_keys.delete(hash=target)
        assert getattr(kept.value, "status_code", None) == 404
    assert admin.api_keys.get(hash=hash_key(account.api_key)).data.name == "api"


def test_dashboard_keys_page_leaves_management_keys_alone(account: Account) -> None:
    peer = account.gateway.admin("POST", f"/admin/accounts/{account.id}/keys", {"name": "peer"}).json()["key"]
    with signed_in(account.gateway.url, account.management_key) as client:
        page = client.get("/keys")
        assert page.status_code == 200
        assert hash_key(peer) not in page.text and hash_key(account.management_key) not in page.text
        token = page.text.split('data-csrf="', 1)[1].split('"', 1)[0]
        for target in (hash_key(peer), hash_key(account.management_key)):
            for action in ("toggle", "delete", "update"):
                answer = client.post(f"/keys/{target}/{action}", data={"csrf": token, "name": "taken"})
                assert answer.status_code == 404, (action, answer.status_code)
    for key in (peer, account.management_key):
        assert call(account, "GET", "/keys", key).status_code == 200  # neither was disabled or deleted
