"""The dashboard shows which inbound API each generation came by: an API column and filter on the
generation list, and usage by API on the activity page."""

from __future__ import annotations

import re

import anthropic
import httpx
import openai

from tests.conftest import Account, Gateway
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


def test_the_model_page_splits_usage_by_api(gateway: Gateway) -> None:
    account = gateway.account()
    model = "test/say-hermes"  # a model no other test of this gateway asks by Messages
    before = _api_rows(httpx.get(f"{gateway.url}/models/{model}", timeout=30).text)
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=account.api_key, max_retries=0)
    for _ in range(2):
        claude.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "split me"}])
    account.chat({"model": model, "messages": [{"role": "user", "content": "and me"}]})
    after = _api_rows(httpx.get(f"{gateway.url}/models/{model}", timeout=30).text)
    assert after.get("messages", 0) == before.get("messages", 0) + 2
    assert after.get("chat", 0) == before.get("chat", 0) + 1


def _api_rows(page: str) -> dict[str, int]:
    table = page.split('id="api-table"', 1)[1].split("</table>", 1)[0] if 'id="api-table"' in page else ""
    return {api: int(requests.replace(",", "")) for api, requests in re.findall(
        r'<tr data-api="([^"]+)">.*?<td class="num">[^<]*</td><td class="num">([0-9,]+)</td>', table, re.S)}
