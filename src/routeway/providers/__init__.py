"""Upstream adapters, one module per provider ``kind``, registered under the name operators type. Which
dialects each kind can carry is in routeway/dialects/registry.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from routeway.catalog import Catalog, Endpoint
from routeway.config import UPSTREAM_APIS, ConfigError, ProviderConfig
from routeway.providers.anthropic import Anthropic
from routeway.providers.base import Adapter, UpstreamCall, UpstreamError
from routeway.providers.http1 import Pool
from routeway.providers.local import LocalModel
from routeway.providers.openai_compat import OpenAICompatible
from routeway.providers.redact import Redactor

# how each kind's adapter is built: from its provider's config, the shared upstream pool, the environment
# (its key) and the redactor of every configured secret
AdapterFactory = Callable[[ProviderConfig, Pool, Mapping[str, str], Redactor], Adapter]
ADAPTERS: dict[str, AdapterFactory] = {"openai": OpenAICompatible, "anthropic": Anthropic, "local": LocalModel}
# the upstream APIs (config.UPSTREAM_APIS) each kind's adapter speaks: text completions and embeddings are
# OpenAI-compatible routes (/completions, /embeddings); Anthropic and routeway's own engine serve chat only
SERVED_APIS: dict[str, frozenset[str]] = {"openai": frozenset(UPSTREAM_APIS), "anthropic": frozenset({"chat"}),
                                          "local": frozenset({"chat"})}


def adapter_class(provider: ProviderConfig) -> AdapterFactory:
    try:
        return ADAPTERS[provider.kind]
    except KeyError:
        raise ConfigError(
            f"provider '{provider.name}': unknown kind '{provider.kind}'; valid kinds: {', '.join(sorted(ADAPTERS))}"
        ) from None


def build_adapter(provider: ProviderConfig, client: Pool, env: Mapping[str, str], redact: Redactor) -> Adapter:
    """``redact`` takes every configured secret out of the errors the adapter raises (providers/redact.py)."""
    return adapter_class(provider)(provider, client, env, redact)


def open_call(adapter: Adapter, api: str, endpoint: Endpoint, body: dict[str, Any], stream: bool,
              client_headers: Mapping[str, str] | None = None) -> Awaitable[UpstreamCall]:
    """Open ``body`` on the upstream route of ``api``: chat completions (with the client's headers the
    adapter forwards), or a text completion (a prompt to ``/completions``, answered in chat's shape).
    ``check_apis`` made sure the endpoint's kind speaks it. A plain function handing back the adapter's
    coroutine: no coroutine layer that every read of the upstream call would resume through (bench step 37)."""
    if api == "completions":
        if not isinstance(adapter, OpenAICompatible) or api not in SERVED_APIS.get(endpoint.provider.kind, ()):
            raise UpstreamError(404, f"provider '{endpoint.provider.name}' does not serve text completions",
                                retryable=False)
        return adapter.open_completion(endpoint, body, stream)
    return adapter.open(endpoint, body, stream, client_headers)


async def embed(adapter: Adapter, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
    """The upstream's ``/embeddings`` answer for ``body``."""
    if not isinstance(adapter, OpenAICompatible) or "embeddings" not in SERVED_APIS.get(endpoint.provider.kind, ()):
        raise UpstreamError(404, f"provider '{endpoint.provider.name}' does not serve embeddings", retryable=False)
    return await adapter.embed(endpoint, body)


def check_apis(catalog: Catalog) -> None:
    """Every endpoint serves only APIs its provider's kind speaks: found at start-up, not on a request."""
    for serving in catalog.endpoints.values():
        for endpoint in serving:
            unspoken = [api for api in endpoint.apis if api not in SERVED_APIS.get(endpoint.provider.kind, ())]
            if unspoken:
                raise ConfigError(
                    f"endpoint {endpoint.model.id} via '{endpoint.provider.name}': provider kind"
                    f" '{endpoint.provider.kind}' does not serve {', '.join(unspoken)}"
                    f" (it serves {', '.join(sorted(SERVED_APIS.get(endpoint.provider.kind, ())))})")


__all__ = ["ADAPTERS", "SERVED_APIS", "Adapter", "Redactor", "UpstreamCall", "UpstreamError", "adapter_class",
           "build_adapter", "check_apis", "embed", "open_call"]
