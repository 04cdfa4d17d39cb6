"""The official openrouter SDK, pointed at routeway (/api/v1), doing every call a client makes."""

from __future__ import annotations

import pytest
from openrouter import OpenRouter
from openrouter.utils import RetryConfig

from tests.conftest import Account


def sdk(account: Account, key: str | None = None) -> OpenRouter:
    return OpenRouter(api_key=key or account.api_key, server_url=account.gateway.api,
                      retry_config=RetryConfig("none", None, False))


def test_chat_and_generation(account: Account) -> None:
    client = sdk(account)
    result = client.chat.send(model="nousresearch/hermes-4-70b", messages=[{"role": "user", "content": "hi routeway"}],
                              max_tokens=64, temperature=0.6, top_p=0.95)
    assert result.choices[0].message.content == "echo: hi routeway"
    assert result.model == "nousresearch/hermes-4-70b"
    generation = client.generations.get_generation(id=result.id).data
    assert generation.id == result.id
    assert generation.model == "nousresearch/hermes-4-70b"
    assert generation.provider_name == "Mock Engine"
    assert generation.tokens_completion == 3
    assert generation.native_tokens_completion == 3
    assert generation.finish_reason == "stop" and generation.native_finish_reason == "stop"
    # Hermes 4 70B at $0.13 / $0.40 per 1M tokens: 5 prompt and 3 completion tokens.
    assert generation.total_cost == pytest.approx((5 * 0.13 + 3 * 0.40) / 1e6)
    assert generation.latency is not None and generation.generation_time is not None
    assert generation.provider_responses[0].status == 200


def test_streamed_chat(account: Account) -> None:
    stream = sdk(account).chat.send(model="test/echo", messages=[{"role": "user", "content": "a b"}], stream=True,
                                    max_tokens=16)
    with stream as events:
        chunks = list(events)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 3


def test_models_endpoints_providers(account: Account) -> None:
    client = sdk(account)
    models = client.models.list().result
    ids = [m.id for m in models.data]
    assert "nousresearch/hermes-4-70b" in ids and models.total_count == len(ids)
    endpoints = client.endpoints.list(author="nousresearch", slug="hermes-4-70b").data
    assert endpoints.name == "Nous: Hermes 4 70B"
    [endpoint] = endpoints.endpoints
    assert endpoint.provider_name == "Mock Engine" and endpoint.tag == "mock"
    assert endpoint.quantization == "fp8" and endpoint.context_length == 131072
    assert endpoint.pricing.prompt == "0.00000013"
    slugs = {p.slug for p in client.providers.list().data}
    assert slugs == {"mock", "mock-b", "mock-t"}


def test_key_and_credits(account: Account) -> None:
    client = sdk(account)
    key = client.api_keys.get_current_key_metadata().data
    assert key.is_management_key is False and key.limit is None
    credits = client.credits.get_credits().data
    assert credits.total_credits == pytest.approx(10.0) and credits.total_usage == 0


def test_keys_lifecycle(account: Account) -> None:
    admin = sdk(account, account.management_key)
    created = admin.api_keys.create(name="ci key", limit=1.5, limit_reset="daily")
    secret, key_hash = created.key, created.data.hash
    assert secret.startswith("sk-rw-v1-") and created.data.limit == 1.5 and created.data.limit_reset == "daily"
    assert key_hash in {k.hash for k in admin.api_keys.list().data}
    # the new key works for inference and sees its own limit
    user = sdk(account, secret)
    assert user.chat.send(model="test/echo", messages=[{"role": "user", "content": "x"}], max_tokens=8).choices
    me = user.api_keys.get_current_key_metadata().data
    assert me.usage > 0 and me.limit_remaining == pytest.approx(1.5 - me.usage)
    updated = admin.api_keys.update(hash=key_hash, name="renamed", disabled=True)
    assert updated.data.name == "renamed" and updated.data.disabled is True
    assert key_hash not in {k.hash for k in admin.api_keys.list().data}
    assert key_hash in {k.hash for k in admin.api_keys.list(include_disabled=True).data}
    with pytest.raises(Exception) as disabled:
        user.chat.send(model="test/echo", messages=[{"role": "user", "content": "x"}], max_tokens=8)
    assert getattr(disabled.value, "status_code", None) == 401
    assert admin.api_keys.get(hash=key_hash).data.name == "renamed"
    admin.api_keys.delete(hash=key_hash)
    with pytest.raises(Exception) as gone:
        admin.api_keys.get(hash=key_hash)
    assert getattr(gone.value, "status_code", None) == 404
    # an API key cannot manage keys
    with pytest.raises(Exception) as forbidden:
        sdk(account).api_keys.list()
    assert getattr(forbidden.value, "status_code", None) == 403
