"""Upstream adapters, one module per dialect, registered under the ``kind`` name operators type."""

from __future__ import annotations

from typing import Mapping

from routeway.config import ConfigError, ProviderConfig
from routeway.providers.anthropic import Anthropic
from routeway.providers.base import Adapter, UpstreamCall, UpstreamError
from routeway.providers.http1 import Pool
from routeway.providers.local import LocalModel
from routeway.providers.openai_compat import OpenAICompatible
from routeway.providers.redact import Redactor

ADAPTERS: dict[str, type[Adapter]] = {"openai": OpenAICompatible, "anthropic": Anthropic, "local": LocalModel}


def adapter_class(provider: ProviderConfig) -> type[Adapter]:
    try:
        return ADAPTERS[provider.kind]
    except KeyError:
        raise ConfigError(
            f"provider '{provider.name}': unknown kind '{provider.kind}'; valid kinds: {', '.join(sorted(ADAPTERS))}"
        ) from None


def build_adapter(provider: ProviderConfig, client: Pool, env: Mapping[str, str], redact: Redactor) -> Adapter:
    """``redact`` takes every configured secret out of the errors the adapter raises (providers/redact.py)."""
    return adapter_class(provider)(provider, client, env, redact)


__all__ = ["ADAPTERS", "Adapter", "adapter_class", "UpstreamCall", "Redactor", "UpstreamError", "build_adapter"]
