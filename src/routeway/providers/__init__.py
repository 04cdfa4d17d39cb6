"""Upstream adapters, one module per provider ``kind``, registered under the name operators type. Which
dialects each kind can carry is in routeway/dialects/registry.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from routeway.config import ConfigError, ProviderConfig
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


__all__ = ["ADAPTERS", "Adapter", "Redactor", "UpstreamCall", "UpstreamError", "adapter_class", "build_adapter"]
