"""Input that used to reach a 500 or a plain-text answer (issue 18 item 4, found by schemathesis):
every one is now a 400 in OpenRouter's error envelope, and a 405 says which methods are allowed.
(Deeply nested bodies are bounded by the resource-limits work, tests/test_resource_limits.py.)"""

from __future__ import annotations

import re
import socket

import httpx
import msgspec
import pytest

from tests.conftest import Account, Gateway
from tests.test_bad_input import assert_error


def management(account: Account) -> dict[str, str]:
    return {"authorization": f"Bearer {account.management_key}"}


@pytest.mark.parametrize("value", ["²", "1²", "٣", "5" * 5000, "-1", "1e3", " 1"])
def test_query_integers_that_are_not_small_ascii_numbers_are_400(account: Account, value: str) -> None:
    api = account.gateway.api
    for name in ("offset", "limit"):
        error = assert_error(httpx.get(api + "/models", params={name: value}), 400, name)
        assert error["metadata"]["param"] == name
    error = assert_error(httpx.get(api + "/keys", params={"offset": value}, headers=management(account)), 400, "offset")
    assert error["metadata"]["param"] == "offset"


def test_query_integers_still_page(gateway: Gateway) -> None:
    listed = httpx.get(gateway.api + "/models", params={"offset": "1", "limit": "2"}).json()
    assert len(listed["data"]) == 2 and listed["total_count"] > 3


def raw_request(gateway: Gateway, request: bytes) -> tuple[str, dict[str, str], bytes]:
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status_line, headers, body


@pytest.mark.parametrize("request_bytes", [
    b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    b"GET /api/v1/mo dels HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST /api/v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n",
    b"POST /api/v1/keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello sent to the plain-HTTP port
])
def test_requests_the_http_parser_refuses_get_the_error_envelope(gateway: Gateway, request_bytes: bytes) -> None:
    status_line, headers, body = raw_request(gateway, request_bytes)
    assert status_line.startswith("HTTP/1.1 400"), status_line
    assert headers["content-type"] == "application/json"
    error = msgspec.json.decode(body)["error"]
    assert error["code"] == 400 and error["metadata"]["error_type"] == "invalid_request" and error["message"]


def test_405_names_the_allowed_methods(account: Account) -> None:
    api = account.gateway.api
    response = httpx.delete(api + "/credits", headers=management(account))
    assert_error(response, 405)
    assert response.headers["allow"] == "GET"
    response = httpx.put(api + "/keys/abc", headers=management(account))
    assert_error(response, 405)
    assert response.headers["allow"] == "DELETE, GET, PATCH"


@pytest.mark.parametrize("page", ["²", "5" * 5000, "99999999999999999999"])
def test_the_dashboards_generation_list_takes_only_small_page_numbers(account: Account, page: str) -> None:
    with httpx.Client(base_url=account.gateway.url) as browser:
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/signin").text)
        assert csrf is not None
        signed_in = browser.post("/signin", data={"key": account.management_key, "csrf": csrf.group(1),
                                                  "next": "/activity/generations"})
        assert signed_in.status_code == 303
        listed = browser.get("/activity/generations", params={"page": page})
        assert listed.status_code == 200 and "text/html" in listed.headers["content-type"]
