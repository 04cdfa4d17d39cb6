"""Every dialect by the name operators type (an endpoint's ``dialect``), loaded lazily on first use as
vLLM loads its parsers; which dialects each provider ``kind`` can carry; the default for a provider.

An unknown name fails loudly with the list of valid ones, when the config loads (config.py) and here."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routeway.catalog import Endpoint
    from routeway.dialects.base import Dialect

# name -> "module:class"; the README's table describes each one's behaviour
DIALECTS: dict[str, str] = {
    "openai": "routeway.dialects.openai:OpenAI",
    "openrouter": "routeway.dialects.openrouter:OpenRouter",
    "hermes": "routeway.dialects.hermes:Hermes",
    "hermes-prompt": "routeway.dialects.hermes_prompt:HermesPrompt",
    "qwen3": "routeway.dialects.qwen3:Qwen3",
    "deepseek": "routeway.dialects.deepseek:DeepSeek",
    "llamacpp": "routeway.dialects.llamacpp:LlamaCpp",
    "ollama": "routeway.dialects.ollama:Ollama",
    "anthropic": "routeway.dialects.anthropic:Anthropic",
}
NAMES = tuple(DIALECTS)
DEFAULT = "openai"

# Which dialects a provider kind's adapter can carry. The OpenAI wire carries every dialect written as an
# OpenAI request (template kwargs, prompts, engine fields); the Anthropic adapter translates to Messages,
# which only the anthropic dialect writes for. `local` (an engine routeway runs itself) speaks the OpenAI
# wire, so it takes the same dialects as `openai`. A kind not listed here is refused by the adapter
# registry (providers/__init__.py), which names the valid kinds.
_OPENAI_WIRE = tuple(name for name in NAMES if name != "anthropic")
KIND_DIALECTS: dict[str, tuple[str, ...]] = {"openai": _OPENAI_WIRE, "local": _OPENAI_WIRE, "anthropic": ("anthropic",)}
_KIND_DEFAULTS = {"anthropic": "anthropic", "local": "hermes"}  # a local model is raw text: routeway parses it

_loaded: dict[str, Dialect] = {}


class UnknownDialect(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown dialect {name!r}; valid dialects: {', '.join(NAMES)}")


def get(name: str | None) -> Dialect:
    """The dialect called ``name`` (None: the default, ``openai``); one shared instance per name."""
    key = name or DEFAULT
    dialect = _loaded.get(key)
    if dialect is None:
        try:
            module, _, cls = DIALECTS[key].partition(":")
        except KeyError:
            raise UnknownDialect(key) from None
        dialect = _loaded[key] = getattr(import_module(module), cls)()
    return dialect


def dialect_of(endpoint: Endpoint) -> Dialect:
    return endpoint.dialect_impl  # resolved once, when the endpoint is made


def default_for(kind: str, provider_name: str) -> str:
    """An endpoint's dialect when the config names none: its kind's own (``anthropic``), ``openrouter`` for
    the provider of that name (the one picked up from ``OPENROUTER_API_KEY``), else ``openai``."""
    return _KIND_DEFAULTS.get(kind) or ("openrouter" if provider_name == "openrouter" else DEFAULT)


def check_pair(kind: str, name: str | None) -> str | None:
    """Why a provider of ``kind`` cannot carry dialect ``name`` (None: the kind's default), or None if it can."""
    if name is not None and name not in DIALECTS:
        return str(UnknownDialect(name))
    valid = KIND_DIALECTS.get(kind)
    if name is None or valid is None or name in valid:
        return None
    return f"dialect {name!r} cannot be spoken over a provider of kind {kind!r}; valid dialects for kind {kind!r}: " \
           f"{', '.join(valid)}"
