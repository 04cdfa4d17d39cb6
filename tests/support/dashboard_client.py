"""The dashboard over plain HTTP (httpx), for tests that need a signed-in page without a browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_token(client: httpx.Client) -> str:
    """Open the sign-in form (which starts an anonymous session) and read its CSRF token."""
    form = client.get("/signin")
    assert form.status_code == 200, form.text
    found = _CSRF.search(form.text)
    assert found, "the sign-in form carries no CSRF token"
    return found.group(1)


@contextmanager
def signed_in(base_url: str, key: str) -> Iterator[httpx.Client]:
    """A client holding the session cookie of ``key`` (a management key or the operator key)."""
    with httpx.Client(base_url=base_url, timeout=30, follow_redirects=False) as client:
        answer = client.post("/signin", data={"csrf": csrf_token(client), "key": key, "next": "/activity"})
        assert answer.status_code == 303, answer.text
        yield client
