"""Where sign-in sends the browser (issue 11 item 5): ``next`` is honoured only when it is a path on this
site; anything else — another host however disguised, or a character that would split the Location
header — goes to the default page, over HTTP against a real server, never a dropped connection."""

from __future__ import annotations

import httpx
import pytest

from routeway.web.core import safe_next

from tests.conftest import ADMIN_KEY, Account
from tests.support.dashboard_client import csrf_token, signed_in

DEFAULT_NEXT = "/activity"  # where sign-in goes when `next` is refused
HOSTILE = [
    "/\t/evil.example/",        # Chromium strips the tab: //evil.example/
    "/\n/evil.example/", "/\r/evil.example/", "\t//evil.example/", " /evil.example", "/ /evil.example",
    "/keys\r\nSet-Cookie: routeway_session=stolen",  # header injection
    "/keys\r\n", "/keys\n", "/keys\0", "/keys\x7f", "/keys\x0b", "/keys\x0c", "/keys\x1b",
    "/keys\u2028", "/keys\u00a0", "/k\u00e9ys",  # non-ASCII, including Unicode line separators
    "//evil.example/", "///evil.example/", "/\\evil.example/", "\\\\evil.example", "/\\/evil.example",
    "https://evil.example/", "javascript:alert(1)", "evil.example", "http:/evil.example", "", "?next=/",
]
SAFE = ["/keys", "/keys?x=1&y=%2F%2Fevil", "/activity/generations", "/models/nousresearch/hermes-4-70b", "/",
        "/playground?model=test/echo"]


def assert_safe(location: str) -> None:
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert location.isascii() and location.isprintable() and " " not in location and "\\" not in location


@pytest.mark.parametrize("target", HOSTILE)
def test_unit_refuses_hostile_targets(target: str) -> None:
    assert safe_next(target) == DEFAULT_NEXT


def test_unit_keeps_paths_on_this_site() -> None:
    for target in SAFE:
        assert safe_next(target) == target
    assert safe_next(None) == DEFAULT_NEXT


def test_signed_in_visit_of_signin_redirects_only_to_this_site(account: Account) -> None:
    with signed_in(account.gateway.url, account.management_key) as client:
        for target in HOSTILE + SAFE:
            answer = client.get("/signin", params={"next": target})
            assert answer.status_code == 303, (target, answer.text)
            location = answer.headers["location"]
            assert_safe(location)
            assert location == (target if target in SAFE else DEFAULT_NEXT), target


def test_signin_post_redirects_only_to_this_site(account: Account) -> None:
    for target in HOSTILE + SAFE:
        with httpx.Client(base_url=account.gateway.url, timeout=30) as client:
            token = csrf_token(client)
            answer = client.post("/signin", data={"csrf": token, "key": account.management_key, "next": target})
            assert answer.status_code == 303, (target, answer.text)
            location = answer.headers["location"]
            assert_safe(location)
            assert location == (target if target in SAFE else DEFAULT_NEXT), target
            assert client.get(location).status_code in (200, 303)  # the session works where it lands


def test_signin_form_keeps_only_a_safe_next(account: Account) -> None:
    with httpx.Client(base_url=account.gateway.url, timeout=30) as client:
        page = client.get("/signin", params={"next": "/\t/evil.example/"})
        assert page.status_code == 200 and 'name="next" value="/activity"' in page.text
        page = client.get("/signin", params={"next": "/keys"})
        assert 'name="next" value="/keys"' in page.text


def test_a_refused_signin_keeps_a_safe_next(account: Account) -> None:
    with httpx.Client(base_url=account.gateway.url, timeout=30) as client:
        token = csrf_token(client)
        page = client.post("/signin", data={"csrf": token, "key": account.api_key, "next": "/\r\n/evil.example"})
        assert page.status_code == 401 and 'name="next" value="/activity"' in page.text


def test_operator_account_switch_redirects_only_to_this_site(account: Account) -> None:
    with signed_in(account.gateway.url, ADMIN_KEY) as client:
        token = client.get("/activity").text.split('data-csrf="', 1)[1].split('"', 1)[0]
        for target in HOSTILE + SAFE:
            answer = client.post("/account", data={"csrf": token, "account": account.id, "next": target})
            assert answer.status_code == 303, (target, answer.text)
            assert_safe(answer.headers["location"])
            assert answer.headers["location"] == (target if target in SAFE else DEFAULT_NEXT), target
