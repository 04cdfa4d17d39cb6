"""The model catalog: the built-in data file, operator-declared models, and the endpoints serving them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any

from routeway.config import ConfigError, ProviderConfig, Settings, upstream_apis
from routeway.dialects import default_for, get as dialect_named
from routeway.ledger.money import nano_per_million

if TYPE_CHECKING:
    from routeway.dialects.base import Dialect


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    name: str
    created: int
    description: str
    context_length: int
    max_output: int | None
    prompt_price: Decimal  # USD per 1M tokens
    completion_price: Decimal
    tokenizer: str
    instruct_type: str | None
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    supported_parameters: tuple[str, ...]
    hugging_face_id: str | None
    upstream_ids: Mapping[str, str]
    input_cache_read: Decimal | None = None  # USD per 1M prompt tokens read from the upstream's prompt cache
    input_cache_write: Decimal | None = None  # ... written into it; None: the prompt price
    # the upstream APIs its endpoints serve unless an endpoint declares its own: an embeddings model's serve
    # /embeddings, any other's /chat/completions (config.UPSTREAM_APIS)
    apis: tuple[str, ...] = ("chat",)
    categories: tuple[str, ...] = ()  # OpenRouter's use-case categories it is listed under (GET /models?category=)

    @property
    def author(self) -> str:
        return self.id.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Endpoint:
    model: ModelInfo
    provider: ProviderConfig
    upstream_model: str
    prompt_nano_per_m: int  # nano-USD per 1M tokens: exact integer arithmetic for the ledger
    completion_nano_per_m: int
    context_length: int
    max_output: int | None
    quantization: str
    supported_parameters: tuple[str, ...]
    dialect: str | None  # a name in routeway.dialects' registry; None: the default (openai)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    apis: tuple[str, ...] = ("chat",)  # the upstream APIs it serves (config.UPSTREAM_APIS)
    cache_read_nano_per_m: int | None = None  # prompt tokens read from the upstream's prompt cache; None: prompt price
    cache_write_nano_per_m: int | None = None  # prompt tokens written into it; None: prompt price
    max_concurrency: int | None = None  # requests in flight to this engine at once (routing/concurrency.py)
    # Derived once here rather than per request (bench step 37): the dearest price a prompt token may be
    # billed at (a cache write costs more than a plain prompt token at Anthropic), which the reservation
    # assumes for the prompt; the most output tokens it can produce; and its dialect's shared instance.
    prompt_bound_nano_per_m: int = field(init=False, repr=False, compare=False)
    max_completion: int = field(init=False, repr=False, compare=False)
    dialect_impl: Dialect = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prompt_bound = max(self.prompt_nano_per_m, self.cache_read_nano_per_m or 0, self.cache_write_nano_per_m or 0)
        object.__setattr__(self, "prompt_bound_nano_per_m", prompt_bound)
        object.__setattr__(self, "max_completion", self.max_output or self.context_length)
        object.__setattr__(self, "dialect_impl", dialect_named(self.dialect))

    @property
    def tag(self) -> str:
        return self.provider.name

    @property
    def key(self) -> str:
        """Health is kept per upstream model on a provider, whichever catalog ids point at it."""
        return f"{self.provider.name}/{self.upstream_model}"

    @property
    def price(self) -> int:
        """Prompt plus completion price per 1M tokens, what price sorting and load balancing compare."""
        return self.prompt_nano_per_m + self.completion_nano_per_m

    @property
    def takes_tools(self) -> bool:
        """Tools can be sent: the endpoint lists them, or its dialect writes them into the prompt."""
        return self.dialect_impl.takes_tools(self.supported_parameters)

    @property
    def takes_structured_output(self) -> bool:
        """JSON mode can be asked: the endpoint lists ``response_format`` or ``structured_outputs``, or its
        dialect asks for JSON in the prompt."""
        return self.dialect_impl.takes_structured_output(self.supported_parameters)


def _model(entry: Mapping[str, Any]) -> ModelInfo:
    output = tuple(entry.get("output_modalities", ["text"]))
    apis = upstream_apis(entry.get("apis"), f"model {entry.get('id', '?')!r}")
    try:
        return ModelInfo(
            id=entry["id"], name=entry.get("name", entry["id"]), created=int(entry.get("created", 0)),
            description=entry.get("description", ""), context_length=int(entry["context_length"]),
            max_output=entry.get("max_output"), prompt_price=Decimal(str(entry.get("prompt_price", "0"))),
            completion_price=Decimal(str(entry.get("completion_price", "0"))),
            tokenizer=entry.get("tokenizer", "Other"), instruct_type=entry.get("instruct_type"),
            input_modalities=tuple(entry.get("input_modalities", ["text"])),
            output_modalities=output,
            supported_parameters=tuple(entry.get("supported_parameters", ())),
            hugging_face_id=entry.get("hugging_face_id"), upstream_ids=dict(entry.get("upstream_ids", {})),
            input_cache_read=_optional_price(entry.get("input_cache_read")),
            input_cache_write=_optional_price(entry.get("input_cache_write")),
            apis=apis or (("embeddings",) if "embeddings" in output else ("chat",)),
            categories=tuple(str(c).lower() for c in entry.get("categories", ())),
        )
    except KeyError as exc:
        raise ConfigError(f"model {entry.get('id', '?')!r}: missing required key {exc}") from None


def _optional_price(value: Any) -> Decimal | None:
    if value is None:
        return None
    price = Decimal(str(value))
    if not price.is_finite() or price < 0:
        raise ConfigError(f"cache price {value!r} must be a number of USD per 1M tokens, not negative")
    return price


def _nano(price: Decimal | None) -> int | None:
    return None if price is None else nano_per_million(price)


def builtin_entries() -> list[dict[str, Any]]:
    text = resources.files("routeway.catalog").joinpath("data/models.json").read_text()
    models: list[dict[str, Any]] = json.loads(text)["models"]
    return models


class Catalog:
    def __init__(self, models: dict[str, ModelInfo], endpoints: dict[str, list[Endpoint]]) -> None:
        self.models = models
        self.endpoints = endpoints
        self.providers: dict[str, ProviderConfig] = {}
        for serving in endpoints.values():
            for endpoint in serving:
                self.providers[endpoint.provider.name] = endpoint.provider

    def get(self, model_id: str) -> ModelInfo | None:
        return self.models.get(model_id)

    def endpoints_for(self, model_id: str) -> list[Endpoint]:
        return self.endpoints.get(model_id, [])

    @classmethod
    def build(cls, settings: Settings) -> Catalog:
        models = {m.id: m for m in map(_model, builtin_entries())}
        for entry in settings.models:
            added = _model(entry)
            models[added.id] = added
        providers = {p.name: p for p in settings.providers}
        endpoints: dict[str, list[Endpoint]] = {}
        for index, declared in enumerate(settings.endpoints):
            model = models.get(declared.model)
            if model is None:
                raise ConfigError(
                    f"endpoints[{index}]: model '{declared.model}' is not in the catalog; declare it under [[models]]"
                )
            endpoints.setdefault(model.id, []).append(Endpoint(
                model=model, provider=providers[declared.provider], upstream_model=declared.upstream_model,
                prompt_nano_per_m=nano_per_million(declared.prompt_price if declared.prompt_price is not None
                                                   else model.prompt_price),
                completion_nano_per_m=nano_per_million(declared.completion_price
                                                       if declared.completion_price is not None
                                                       else model.completion_price),
                context_length=declared.context_length or model.context_length,
                max_output=declared.max_output or model.max_output, quantization=declared.quantization,
                supported_parameters=declared.supported_parameters or model.supported_parameters,
                dialect=declared.dialect or default_for(providers[declared.provider].kind, declared.provider),
                extra_body=declared.extra_body, apis=declared.apis or model.apis,
                max_concurrency=declared.max_concurrency,
                cache_read_nano_per_m=_nano(declared.input_cache_read if declared.input_cache_read is not None
                                            else model.input_cache_read),
                cache_write_nano_per_m=_nano(declared.input_cache_write if declared.input_cache_write is not None
                                             else model.input_cache_write),
            ))
        for provider in settings.providers:
            if provider.serves_catalog:
                cls._add_catalog_endpoints(provider, models, endpoints)
        return cls(models, endpoints)

    @staticmethod
    def _add_catalog_endpoints(
        provider: ProviderConfig, models: dict[str, ModelInfo], endpoints: dict[str, list[Endpoint]]
    ) -> None:
        for model in models.values():
            if any(e.provider.name == provider.name for e in endpoints.get(model.id, ())):
                continue
            upstream = model.upstream_ids.get(provider.name)
            if upstream is None and "*" in provider.serves_catalog:
                upstream = model.id
            if upstream is None:
                continue
            endpoints.setdefault(model.id, []).append(Endpoint(
                model=model, provider=provider, upstream_model=upstream,
                prompt_nano_per_m=nano_per_million(model.prompt_price),
                completion_nano_per_m=nano_per_million(model.completion_price),
                context_length=model.context_length, max_output=model.max_output, quantization="unknown",
                supported_parameters=model.supported_parameters, dialect=default_for(provider.kind, provider.name),
                apis=model.apis,
                cache_read_nano_per_m=_nano(model.input_cache_read),
                cache_write_nano_per_m=_nano(model.input_cache_write),
            ))
