"""GET /models with the filters, sorts and paging the openrouter SDK sends, GET /models/count, and
GET /activity (an account's usage per UTC day, model and endpoint) through the SDK."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from openrouter import OpenRouter, errors
from openrouter.utils import RetryConfig

from routeway.api.http import Request
from routeway.api.model_query import matching
from routeway.catalog import Catalog
from routeway.config import Settings
from routeway.errors import APIError

from tests.conftest import Account, Gateway


def sdk(gateway: Gateway, key: str = "sk-unused") -> OpenRouter:  # /models needs no key
    return OpenRouter(api_key=key, server_url=gateway.api, retry_config=RetryConfig("none", None, False))


def per_million(price: str) -> Decimal:
    return Decimal(price) * 1_000_000


def test_filters(gateway: Gateway) -> None:
    client = sdk(gateway)
    everything = client.models.list(output_modalities="all").result
    default = client.models.list().result
    assert default.total_count < everything.total_count
    hermes = client.models.list(q="HERMES").result.data
    assert hermes and all("hermes" in (m.id + m.name).lower() for m in hermes)
    assert "nousresearch/hermes-4-70b" in {m.id for m in hermes}
    long = client.models.list(context=200_000).result.data
    assert long and all(m.context_length >= 200_000 for m in long)
    priced = client.models.list(min_price=1, max_price=3).result.data
    assert priced and all(1 <= per_million(m.pricing.prompt) <= 3 for m in priced)
    seeing = client.models.list(input_modalities="image,text").result.data
    assert seeing and all({"image", "text"} <= set(m.architecture.input_modalities) for m in seeing)
    tools = client.models.list(supported_parameters="tools,reasoning").result.data
    assert tools and all({"tools", "reasoning"} <= set(m.supported_parameters) for m in tools)
    vectors = client.models.list(output_modalities="embeddings").result.data
    assert {m.id for m in vectors} == {"openai/text-embedding-3-small", "openai/text-embedding-3-large"}
    assert not {m.id for m in vectors} & {m.id for m in default.data}


def test_sorts(gateway: Gateway) -> None:
    client = sdk(gateway)
    newest = client.models.list(sort="newest").result.data
    assert [m.created for m in newest] == sorted((m.created for m in newest), reverse=True)
    cheap = client.models.list(sort="pricing-low-to-high").result.data
    prices = [per_million(m.pricing.prompt) + per_million(m.pricing.completion) for m in cheap]
    assert prices == sorted(prices) and prices[0] < prices[-1]
    wide = client.models.list(sort="context-high-to-low").result.data
    assert [m.context_length for m in wide] == sorted((m.context_length for m in wide), reverse=True)
    # no model has a benchmark score: the catalog's order stays
    assert [m.id for m in client.models.list(sort="coding-high-to-low").result.data] == [
        m.id for m in client.models.list().result.data]


def test_pages_and_count(gateway: Gateway) -> None:
    client = sdk(gateway)
    everything = [m.id for m in client.models.list().result.data]
    first = client.models.list(limit=5, offset=0)
    assert [m.id for m in first.result.data] == everything[:5]
    assert first.result.total_count == len(everything)
    assert first.result.links.next is not None and "offset=5" in first.result.links.next
    following = first.next()
    assert following is not None and [m.id for m in following.result.data] == everything[5:10]
    assert client.models.count().data.count == len(everything)
    assert client.models.count(output_modalities="embeddings").data.count == 2
    last = client.models.list(limit=5, offset=len(everything) - 2).result
    assert len(last.data) == 2 and last.links.next is None


@pytest.mark.parametrize(("query", "param"), [
    ({"sort": "random"}, "sort"), ({"category": "poetry"}, "category"), ({"output_modalities": "smell"},
                                                                         "output_modalities"),
    ({"input_modalities": "embeddings"}, "input_modalities"), ({"min_price": "cheap"}, "min_price"),
    ({"max_price": "-1"}, "max_price"), ({"context": "-5"}, "context"), ({"max_price": "NaN"}, "max_price"),
])
def test_bad_queries_are_a_400_naming_the_parameter(gateway: Gateway, query: dict[str, str], param: str) -> None:
    for path in ("/models", "/models/count"):
        if path == "/models/count" and param == "sort":
            continue
        answer = httpx.get(gateway.api + path, params=query)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["metadata"]["param"] == param


def _request(query: str) -> Request:
    return Request({"type": "http", "query_string": query.encode(), "headers": []}, None, None)  # type: ignore[arg-type]


def test_category_lists_the_models_the_catalog_puts_under_it() -> None:
    settings = Settings(models=(
        {"id": "t/coder", "context_length": 1000, "categories": ["Programming"]},
        {"id": "t/writer", "context_length": 1000, "categories": ["roleplay", "marketing/seo"]},
    ))

    class Services:
        catalog = Catalog.build(settings)

    def ids(query: str) -> list[str]:
        return [m.id for m in matching(Services(), _request(query))]  # type: ignore[arg-type]

    assert ids("category=programming") == ["t/coder"]
    assert ids("category=marketing%2Fseo") == ["t/writer"]
    assert ids("category=legal") == []
    with pytest.raises(APIError):
        ids("category=nonsense")


def test_activity_per_day_model_and_endpoint(account: Account) -> None:
    reply = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "count me"}],
                          "max_tokens": 20})
    assert reply.status_code == 200
    cost = reply.json()["usage"]["cost"]
    today = datetime.now(UTC).date().isoformat()
    manager = sdk(account.gateway, account.management_key)
    [item] = manager.analytics.get_user_activity(request={"date": today}).data
    assert (item.date_, item.model, item.provider_name, item.requests) == (today, "test/echo", "Mock Engine", 1)
    assert (item.prompt_tokens, item.completion_tokens) == (5, 3)  # the mock's counts: 2 words + 3; 3 words
    assert item.usage == pytest.approx(cost) and item.byok_usage_inference == 0
    # the default is the 30 completed UTC days: today is still counting
    assert manager.analytics.get_user_activity().data == []
    with pytest.raises(errors.OpenRouterError) as api_key:
        sdk(account.gateway, account.api_key).analytics.get_user_activity()
    assert api_key.value.status_code == 403
    for bad in ("yesterday", "2001-01-01", "2026-13-01"):
        answer = httpx.get(account.gateway.api + "/activity", params={"date": bad},
                           headers={"authorization": f"Bearer {account.management_key}"})
        assert answer.status_code == 400 and answer.json()["error"]["metadata"]["param"] == "date"


def test_activity_of_one_key(account: Account) -> None:
    assert account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "x"}]}).status_code == 200
    headers = {"authorization": f"Bearer {account.management_key}"}
    keys: list[dict[str, Any]] = httpx.get(account.gateway.api + "/keys", headers=headers).json()["data"]
    [api_key] = [k["hash"] for k in keys if k["name"] == "api"]
    today = datetime.now(UTC).date().isoformat()
    mine = httpx.get(account.gateway.api + "/activity", params={"date": today, "api_key_hash": api_key},
                     headers=headers).json()["data"]
    assert [i["requests"] for i in mine] == [1]
    other = httpx.get(account.gateway.api + "/activity", params={"date": today, "api_key_hash": "0" * 64},
                      headers=headers).json()["data"]
    assert other == []


def test_activity_is_the_management_keys_own_account(gateway: Gateway) -> None:
    mine, theirs = gateway.account(name="activity-mine"), gateway.account(name="activity-theirs")
    for account, model in ((mine, "test/echo"), (theirs, "test/slow")):
        assert account.chat({"model": model, "messages": [{"role": "user", "content": "x"}]}).status_code == 200
    today = datetime.now(UTC).date().isoformat()

    def activity(account: Account, **query: str) -> list[dict[str, Any]]:
        answer = httpx.get(gateway.api + "/activity", params={"date": today, **query},
                           headers={"authorization": f"Bearer {account.management_key}"})
        assert answer.status_code == 200
        data: list[dict[str, Any]] = answer.json()["data"]
        return data

    assert [i["model"] for i in activity(mine)] == ["test/echo"]
    assert [i["model"] for i in activity(theirs)] == ["test/slow"]
    # another account's key hash finds nothing: the account scope comes first
    keys = httpx.get(gateway.api + "/keys", headers={"authorization": f"Bearer {theirs.management_key}"}).json()
    [their_key] = [k["hash"] for k in keys["data"] if k["name"] == "api"]
    assert activity(mine, api_key_hash=their_key) == []
