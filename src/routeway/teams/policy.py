"""A guardrail's rules and what they refuse. Rules of several guardrails combine as OpenRouter's do:
allow-lists intersect and deny-lists add up (so checking each guardrail in turn is the combination), a
zero-data-retention requirement from any of them holds (OR), and each budget is checked on its own
(ledger/book.py). Each refusal names the guardrail and the rule, for the 403 and the routing error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from msgspec import Meta, Struct

from routeway.catalog import Endpoint

Interval = Literal["daily", "weekly", "monthly", "lifetime"]
Slug = Annotated[str, Meta(min_length=1, max_length=200)]
Slugs = Annotated[list[Slug], Meta(max_length=1000)]
ZDR_GROUPS = ("anthropic", "openai", "google", "xai")  # model authors OpenRouter names; the rest are "other"


class Rules(Struct, forbid_unknown_fields=False, omit_defaults=True):
    """The policy fields of a guardrail, with OpenRouter's names (stored as one JSON document)."""
    description: Annotated[str, Meta(max_length=2000)] | None = None
    limit_usd: Annotated[float, Meta(gt=0, le=1_000_000)] | None = None
    reset_interval: Interval | None = None
    include_byok_in_budgets: bool = False
    allowed_models: Slugs | None = None
    ignored_models: Slugs | None = None
    allowed_providers: Slugs | None = None
    ignored_providers: Slugs | None = None
    enforce_zdr: bool | None = None  # deprecated by OpenRouter: copied into the enforce_zdr_* left unset
    enforce_zdr_anthropic: bool | None = None
    enforce_zdr_openai: bool | None = None
    enforce_zdr_google: bool | None = None
    enforce_zdr_xai: bool | None = None
    enforce_zdr_other: bool | None = None

    def zdr_for(self, model_id: str) -> bool:
        author = model_id.split("/", 1)[0]
        group = author if author in ZDR_GROUPS else "other"
        value: bool | None = getattr(self, f"enforce_zdr_{group}")
        return bool(self.enforce_zdr if value is None else value)


@dataclass(frozen=True, slots=True)
class Refusal:
    guardrail_id: str
    guardrail: str  # its name
    rule: str  # the field that refuses: allowed_models, ignored_providers, enforce_zdr…
    reason: str  # in words, for the error message

    @property
    def metadata(self) -> dict[str, str]:
        return {"guardrail_id": self.guardrail_id, "guardrail": self.guardrail, "rule": self.rule}


@dataclass(frozen=True, slots=True)
class Guarded:
    """One guardrail as it applies to a request."""
    id: str
    name: str
    rules: Rules


def _base(model_id: str) -> str:
    return model_id.partition(":")[0]


def _listed(slug: str, names: list[str]) -> bool:
    return slug in names or _base(slug) in names


@dataclass(frozen=True, slots=True)
class Policy:
    """The guardrails that apply to one key: its own and its account's default ones."""
    guardrails: tuple[Guarded, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.guardrails)

    def model_refusal(self, model_id: str) -> Refusal | None:
        for g in self.guardrails:
            r = g.rules
            if r.allowed_models is not None and not _listed(model_id, r.allowed_models):
                return Refusal(g.id, g.name, "allowed_models", f"model {model_id} is not in its allowed_models")
            if r.ignored_models and _listed(model_id, r.ignored_models):
                return Refusal(g.id, g.name, "ignored_models", f"model {model_id} is in its ignored_models")
        return None

    def endpoint_refusal(self, endpoint: Endpoint) -> Refusal | None:
        provider = endpoint.tag
        for g in self.guardrails:
            r = g.rules
            if r.allowed_providers is not None and provider not in r.allowed_providers:
                return Refusal(g.id, g.name, "allowed_providers",
                               f"provider {provider} is not in its allowed_providers")
            if r.ignored_providers and provider in r.ignored_providers:
                return Refusal(g.id, g.name, "ignored_providers", f"provider {provider} is in its ignored_providers")
            if not endpoint.provider.zdr and r.zdr_for(endpoint.model.id):
                return Refusal(g.id, g.name, "enforce_zdr",
                               f"provider {provider} is not a zero-data-retention endpoint")
        return None
