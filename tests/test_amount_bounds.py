"""Every USD amount that comes in is bounded at the wire (ledger/money.py): a huge one is a 400 naming the
field, never a write that overflows SQLite's INTEGER and stops the store's writer for everyone."""

from __future__ import annotations

import re

import httpx
import pytest

from routeway.ledger.money import MAX_ACCOUNT_CREDITS_USD, MAX_USD

from tests.conftest import Account, Gateway

HUGE = [1e12, -1e12, "1e400", "-1e400"]  # strings go into the JSON body as they are: 1e400 decodes to inf


def post_raw(url: str, key: str, field: str, value: float | str, extra: str, method: str = "POST") -> httpx.Response:
    body = "{" + extra + f'"{field}": {value}' + "}"
    return httpx.request(method, url, content=body, timeout=10,
                         headers={"authorization": f"Bearer {key}", "content-type": "application/json"})


def assert_refused(answer: httpx.Response, field: str) -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["metadata"]["error_type"] == "invalid_request" and error["metadata"]["param"] == field, error


def assert_writer_alive(gateway: Gateway, account: Account) -> None:
    chat = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "still there?"}],
                         "max_tokens": 20})
    assert chat.status_code == 200, chat.text
    grant = gateway.admin("POST", f"/admin/accounts/{account.id}/credits", {"amount": 1})
    assert grant.status_code == 201, grant.text
    state = account.state()
    assert round(state["balance"] * 1e9) == account.ledger_sum() and state["reserved"] == 0
    assert httpx.get(gateway.url + "/health", timeout=5).status_code == 200


def test_huge_amounts_are_400_naming_the_field_on_every_route(fresh_gateway: Gateway) -> None:
    gw = fresh_gateway
    account = gw.account()
    admin_key = gw.admin("GET", "/admin/accounts").request.headers["authorization"].split()[1]
    created = httpx.post(gw.api + "/keys", json={"name": "k"}, timeout=10,
                         headers={"authorization": f"Bearer {account.management_key}"}).json()["data"]
    for value in HUGE:
        if not str(value).startswith("-"):
            assert_refused(post_raw(gw.api + "/keys", account.management_key, "limit", value, '"name": "big",'), "limit")
            assert_refused(post_raw(gw.api + f"/keys/{created['hash']}", account.management_key, "limit", value, "",
                                    "PATCH"), "limit")
            assert_refused(post_raw(gw.api + f"/admin/accounts/{account.id}/keys", admin_key, "limit", value,
                                    '"name": "big",'), "limit")
        assert_refused(post_raw(gw.api + "/admin/accounts", admin_key, "credits", value, '"name": "big",'), "credits")
        assert_refused(post_raw(gw.api + f"/admin/accounts/{account.id}/credits", admin_key, "amount", value, ""),
                       "amount")
    assert_writer_alive(gw, account)


def test_an_account_cannot_be_granted_past_the_ceiling(fresh_gateway: Gateway) -> None:
    gw = fresh_gateway
    account = gw.account(credits=10)
    grant = lambda amount: gw.admin("POST", f"/admin/accounts/{account.id}/credits", {"amount": amount})  # noqa: E731
    assert_refused(grant(MAX_USD), "amount")  # $10 + $1e9 would pass the ceiling
    assert grant(MAX_ACCOUNT_CREDITS_USD - 10).status_code == 201  # exactly at it
    assert_refused(grant(0.000000001), "amount")
    assert grant(-5).status_code == 201  # taking back is fine, and does not make room: the sum of grants is bounded
    assert_refused(grant(1), "amount")
    state = account.state()
    assert state["total_credits"] == MAX_ACCOUNT_CREDITS_USD and state["balance"] == MAX_ACCOUNT_CREDITS_USD - 5
    assert round(state["balance"] * 1e9) == account.ledger_sum()
    chat = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20})
    assert chat.status_code == 200, chat.text


def signed_in(gw: Gateway, management_key: str) -> tuple[httpx.Client, str]:
    """A browser-like client signed in to the dashboard, and the CSRF token of its session."""
    client = httpx.Client(base_url=gw.url, timeout=10)
    form = client.get("/signin")
    csrf = re.search(r'data-csrf="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    assert client.post("/signin", data={"key": management_key, "csrf": csrf, "next": "/keys"}).status_code == 303
    page = client.get("/keys")
    return client, re.search(r'data-csrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize("limit", ["1e12", "1e400"])
def test_the_dashboard_keys_form_refuses_a_huge_limit(fresh_gateway: Gateway, limit: str) -> None:
    gw = fresh_gateway
    account = gw.account()
    client, csrf = signed_in(gw, account.management_key)
    try:
        assert client.post("/keys", data={"name": "small", "limit": "5", "csrf": csrf}).status_code == 303
        keys = httpx.get(gw.api + "/keys", headers={"authorization": f"Bearer {account.management_key}"}).json()["data"]
        small = next(k for k in keys if k["name"] == "small")
        assert client.post("/keys", data={"name": "big", "limit": limit, "csrf": csrf}).status_code == 303
        assert "&lt;= 1000000000" in client.get("/keys").text  # the flash names the bound
        assert client.post(f"/keys/{small['hash']}/update", data={"limit": limit, "csrf": csrf}).status_code == 303
        assert "&lt;= 1000000000" in client.get("/keys").text
    finally:
        client.close()
    keys = httpx.get(gw.api + "/keys", headers={"authorization": f"Bearer {account.management_key}"}).json()["data"]
    assert sorted(k["name"] for k in keys) == ["api", "small"]  # no "big" key was made
    assert next(k for k in keys if k["name"] == "small")["limit"] == 5
    assert_writer_alive(gw, account)
