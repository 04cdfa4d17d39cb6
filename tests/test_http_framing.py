"""How answers are framed on the wire: Content-Length on whole answers, HEAD with the GET's length."""

from __future__ import annotations

import httpx

from tests.conftest import Account


def test_whole_answers_carry_their_length_and_are_not_chunked(account: Account) -> None:
    reply = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 200
    assert reply.headers["content-length"] == str(len(reply.content))
    assert "transfer-encoding" not in reply.headers
    error = account.chat({"model": "test/echo"})  # no messages: a 400 in OpenRouter's shape, framed the same way
    assert error.status_code == 400 and error.headers["content-length"] == str(len(error.content))


def test_head_gives_the_length_of_the_page_without_the_page(account: Account) -> None:
    page = httpx.get(account.gateway.url + "/static/app.css")  # a file: the same bytes each time
    head = httpx.head(account.gateway.url + "/static/app.css")
    assert page.status_code == head.status_code == 200
    assert head.content == b"" and head.headers["content-length"] == str(len(page.content))
