"""The dashboard shows which inbound API each generation came by: an API column and filter on the
generation list, and usage by API on the activity page."""

from __future__ import annotations

import re

import anthropic
import openai

from tests.conftest import Account
from tests.support.dashboard_client import signed_in


def _ids(page: str) -> list[str]:
    return re.findall(r'<tr data-generation="([^"]+)">', page)


def test_generations_show_and_filter_by_api(account: Account) -> None:
    chat = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "by chat"}]}).json()["id"]
    claude = anthropic.Anthropic(base_url=account.gateway.url, api_key=account.api_key, max_retries=0)
    messages = claude.messages.create(model="test/echo", max_tokens=20,
                                      messages=[{"role": "user", "content": "by messages"}]).id
    client = openai.OpenAI(base_url=account.gateway.url + "/v1", api_key=account.api_key, max_retries=0)
    responses = client.responses.create(model="test/echo", input="by responses").id
    with signed_in(account.gateway.url, account.management_key) as dashboard:
        everything = dashboard.get("/activity/generations").text
        assert set(_ids(everything)) == {chat, messages, responses}
        for generation, api in ((chat, "chat"), (messages, "messages"), (responses, "responses")):
            row = everything.split(f'<tr data-generation="{generation}">', 1)[1].split("</tr>", 1)[0]
            assert f'data-api="{api}"' in row
            only = dashboard.get("/activity/generations", params={"api": api})
            assert only.status_code == 200 and _ids(only.text) == [generation]
        both = dashboard.get("/activity/generations", params={"api": "messages", "model": "test/echo"}).text
        assert _ids(both) == [messages]
        assert _ids(dashboard.get("/activity/generations", params={"api": "embeddings"}).text) == []
        bad = dashboard.get("/activity/generations", params={"api": "<script>"})
        assert bad.status_code == 400 and "<script>" not in bad.text
        activity = dashboard.get("/activity").text
    section = activity.split('id="by-api"', 1)[1].split("</section>", 1)[0]
    rows = dict(re.findall(r'<tr data-api="([^"]+)">.*?<td class="num">[^<]*</td><td class="num">[^<]*</td>'
                           r'<td class="num">([0-9]+)</td>', section, re.S))
    assert rows == {"chat": "1", "messages": "1", "responses": "1"}
    assert "Anthropic Messages" in section and 'href="/activity/generations?api=responses"' in section
