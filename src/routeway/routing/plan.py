"""The ordered attempts for one request.

For each requested model (``model`` then ``models``), the endpoints that can take the request —
capabilities, context, the ``provider`` preferences — in the order routing wants to try them:
``order`` first when given; else ``sort`` (price, throughput, latency); else OpenRouter's default load
balancing: skip endpoints with an outage in the last 30 s, pick among the rest at random weighted by
the inverse square of price, then the others as fallbacks by price, the unstable ones last.
Variants: ``:nitro`` sorts by throughput, ``:floor`` by price, ``:free`` keeps zero-price endpoints.

The random draw comes from the Planner's own ``random.Random``: a caller (a unit test) injects one, or
``ROUTEWAY_ROUTING_SEED`` seeds it so a test gateway routes the same way on every run.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from routeway.catalog import Catalog, Endpoint, ModelInfo
from routeway.errors import APIError
from routeway.interfaces import HealthRegistry
from routeway.teams.policy import Policy, Refusal
from routeway.wire.chat import ChatRequest, ProviderPreferences, SortConfig

VARIANTS = ("nitro", "floor", "free")
SEED_VARIABLE = "ROUTEWAY_ROUTING_SEED"
_TTFT, _TPS = 1, 2
NO_POLICY = Policy()  # sample fields in EndpointHealth.samples


@dataclass(frozen=True, slots=True)
class Attempt:
    model: ModelInfo
    endpoint: Endpoint


@dataclass(slots=True)
class Exclusion:
    model: str
    provider: str
    reason: str
    by_request: bool  # excluded by the caller's preferences, rather than by what the endpoint can do
    temporary: bool = False  # rate limited or breaker open: it may take requests again soon
    refusal: Refusal | None = None  # a guardrail forbids it


@dataclass(slots=True)
class Demand:
    """What the request needs from an endpoint."""
    prompt_tokens: int
    max_tokens: int | None
    parameters: list[str] = field(default_factory=list)
    api: str = "chat"  # the upstream API it needs served (config.UPSTREAM_APIS)


def requested_models(chat: ChatRequest) -> list[str]:
    ids: list[str] = []
    for model_id in ([chat.model] if chat.model else []) + (chat.models or []):
        if model_id not in ids:
            ids.append(model_id)
    return ids


def sent_parameters(chat: ChatRequest) -> list[str]:
    names = ["temperature", "top_p", "top_k", "frequency_penalty", "presence_penalty", "repetition_penalty",
             "min_p", "top_a", "seed", "stop", "logit_bias", "logprobs", "top_logprobs", "response_format",
             "tools", "tool_choice", "reasoning", "include_reasoning", "max_tokens"]
    sent = [n for n in names if getattr(chat, n, None) is not None]
    if chat.max_completion_tokens is not None and "max_tokens" not in sent:
        sent.append("max_tokens")
    if chat.reasoning_effort is not None and "reasoning" not in sent:
        sent.append("reasoning")
    return sent


def seeded_random(env: Mapping[str, str] = os.environ) -> random.Random:
    """The load balancer's random source: seeded from ROUTEWAY_ROUTING_SEED when set (tests), else from
    the operating system, as ``random.Random()`` is."""
    seed = env.get(SEED_VARIABLE)
    return random.Random(seed) if seed else random.Random()  # any text is a valid, reproducible seed


class Planner:
    def __init__(self, catalog: Catalog, health: HealthRegistry, rng: random.Random | None = None) -> None:
        self.catalog = catalog
        self.health = health
        self.rng = rng or seeded_random()

    def plan(self, chat: ChatRequest, demand: Demand, now: float, policy: Policy = NO_POLICY) -> list[Attempt]:
        """``policy``: the caller's guardrails; a model one forbids is a 403 before anything else, and the
        endpoints one forbids are left out (all of them left out: a 403 too)."""
        if policy:
            for requested in requested_models(chat):
                refusal = policy.model_refusal(requested)
                if refusal is not None:
                    raise guardrail_refusal(refusal)
        prefs = chat.provider or ProviderPreferences()
        groups: list[list[Attempt]] = []
        exclusions: list[Exclusion] = []
        unknown: list[str] = []
        retry_after: list[float] = []
        for requested in requested_models(chat):
            base, _, variant = requested.partition(":")
            model = self.catalog.get(base)
            if model is None or (variant and variant not in VARIANTS):
                unknown.append(requested)
                continue
            eligible: list[Endpoint] = []
            for endpoint in self.catalog.endpoints_for(base):
                refusal = policy.endpoint_refusal(endpoint) if policy else None
                if refusal is not None:
                    exclusions.append(Exclusion(base, endpoint.tag, f"forbidden by guardrail \"{refusal.guardrail}\""
                                                f" ({refusal.rule}: {refusal.reason})", True, refusal=refusal))
                    continue
                reason, by_request = self._exclusion(endpoint, chat, prefs, demand, variant)
                if reason is None and self.health.of(endpoint.key).rate_limited(now):
                    wait = self.health.of(endpoint.key).retry_at - now
                    reason, by_request = f"rate limited by the upstream for {wait:.0f} more s", False
                    retry_after.append(wait)
                if reason is None and not self.health.of(endpoint.key).breaker.available(now):
                    reason, by_request = "circuit breaker open after repeated failures", False
                    retry_after.append(self.health.settings.breaker_cooldown)
                if reason is None:
                    eligible.append(endpoint)
                else:
                    temporary = not by_request and ("rate limited" in reason or "breaker" in reason)
                    exclusions.append(Exclusion(base, endpoint.tag, reason, by_request, temporary))
            groups.append([Attempt(model, e) for e in self._order(eligible, prefs, variant, now)])
        sort = _sort_of(prefs)
        if sort is not None and isinstance(prefs.sort, SortConfig) and prefs.sort.partition == "none":
            merged = [a for group in groups for a in group]
            groups = [self._sorted(merged, sort, now)]
        attempts = [a for group in groups for a in group]
        if attempts:
            return attempts
        raise self._nothing_qualifies(chat, unknown, exclusions, retry_after)

    # ---- filters ------------------------------------------------------------------------------------
    def _exclusion(self, e: Endpoint, chat: ChatRequest, prefs: ProviderPreferences, demand: Demand,
                   variant: str) -> tuple[str | None, bool]:
        supported = set(e.supported_parameters)
        if demand.api not in e.apis:
            return f"does not serve {demand.api} (it serves {', '.join(e.apis)})", False
        if prefs.only is not None and e.tag not in prefs.only:
            return "not in provider.only", True
        if prefs.ignore and e.tag in prefs.ignore:
            return "ignored by request", True
        if prefs.order and prefs.allow_fallbacks is False and e.tag not in prefs.order:
            return "not in provider.order and allow_fallbacks is false", True
        if prefs.data_collection == "deny" and e.provider.data_collection == "allow":
            return "provider may store or train on data (data_collection: deny)", True
        if prefs.zdr and not e.provider.zdr:
            return "not a zero-data-retention endpoint", True
        if prefs.quantizations and e.quantization not in prefs.quantizations:
            return f"quantization {e.quantization} not in {', '.join(prefs.quantizations)}", True
        if prefs.max_price is not None:
            prompt, completion = e.prompt_nano_per_m / 1e9, e.completion_nano_per_m / 1e9
            if prefs.max_price.prompt is not None and prompt > prefs.max_price.prompt:
                return f"prompt price ${prompt:g}/M above max_price ${prefs.max_price.prompt:g}/M", True
            if prefs.max_price.completion is not None and completion > prefs.max_price.completion:
                return f"completion price ${completion:g}/M above max_price ${prefs.max_price.completion:g}/M", True
        if variant == "free" and e.price != 0:
            return "not free (:free)", True
        if chat.tools and not e.takes_tools:
            return "no tool use support", False
        if chat.response_format is not None and chat.response_format.type != "text" and not e.takes_structured_output:
            return "no response_format support", False
        if prefs.require_parameters:
            missing = [p for p in demand.parameters if p not in supported]
            if missing:
                return f"does not support {', '.join(missing)} (require_parameters)", False
        needed = demand.prompt_tokens + (demand.max_tokens or 0)
        if needed > e.context_length:
            return f"context {e.context_length:,} < {needed:,} needed", False
        if demand.max_tokens and e.max_output and demand.max_tokens > e.max_output:
            return f"max output {e.max_output:,} < {demand.max_tokens:,} requested", False
        return None, False

    # ---- ordering -----------------------------------------------------------------------------------
    def _order(self, endpoints: list[Endpoint], prefs: ProviderPreferences, variant: str, now: float) -> list[Endpoint]:
        if not endpoints:
            return endpoints
        if prefs.order:
            rank = {slug: i for i, slug in enumerate(prefs.order)}
            first = sorted((e for e in endpoints if e.tag in rank), key=lambda e: rank[e.tag])
            return first + self._balanced([e for e in endpoints if e.tag not in rank], now)
        sort = _sort_of(prefs) or {"nitro": "throughput", "floor": "price"}.get(variant)
        if sort is not None:
            return [a.endpoint for a in self._sorted([Attempt(e.model, e) for e in endpoints], sort, now)]
        ordered = self._balanced(endpoints, now)
        return self._preferred(ordered, prefs, now)

    def _balanced(self, endpoints: list[Endpoint], now: float) -> list[Endpoint]:
        """OpenRouter's default: stable endpoints first, the first drawn by inverse-square price."""
        if len(endpoints) < 2:
            return endpoints  # one engine behind a model is the common self-hosted case: nothing to draw
        stable = [e for e in endpoints if not self.health.of(e.key).in_outage(now)]
        unstable = sorted((e for e in endpoints if e not in stable), key=lambda e: e.price)
        if not stable:
            return unstable
        weights = [1.0 / max(e.price, 1) ** 2 for e in stable]
        first = self.rng.choices(stable, weights=weights)[0]
        rest = sorted((e for e in stable if e is not first), key=lambda e: e.price)
        return [first, *rest, *unstable]

    def _sorted(self, attempts: list[Attempt], by: str, now: float) -> list[Attempt]:
        def p50(a: Attempt, which: int) -> float | None:
            stats = self.health.of(a.endpoint.key).percentiles(which, 1800, now)
            return stats["p50"] if stats else None

        if by == "price":
            return sorted(attempts, key=lambda a: a.endpoint.price)
        if by == "throughput":  # unknown throughput last
            return sorted(attempts, key=lambda a: -(p50(a, _TPS) or -1.0))
        if by == "latency":
            return sorted(attempts, key=lambda a: ttft if (ttft := p50(a, _TTFT)) is not None else float("inf"))
        return attempts  # "exacto" (tool-call quality) needs signals routeway does not collect yet

    def _preferred(self, endpoints: list[Endpoint], prefs: ProviderPreferences, now: float) -> list[Endpoint]:
        """preferred_max_latency / preferred_min_throughput: soft, the misses move to the end."""
        if prefs.preferred_max_latency is None and prefs.preferred_min_throughput is None:
            return endpoints

        def misses(e: Endpoint) -> bool:
            health = self.health.of(e.key)
            if prefs.preferred_max_latency is not None:
                stats = health.percentiles(_TTFT, 300, now)
                if stats and any(stats[p] > limit * 1000 for p, limit in _thresholds(prefs.preferred_max_latency)):
                    return True
            if prefs.preferred_min_throughput is not None:
                stats = health.percentiles(_TPS, 300, now)
                if stats and any(stats[p] < limit for p, limit in _thresholds(prefs.preferred_min_throughput)):
                    return True
            return False

        return [e for e in endpoints if not misses(e)] + [e for e in endpoints if misses(e)]

    # ---- errors -------------------------------------------------------------------------------------
    def _nothing_qualifies(self, chat: ChatRequest, unknown: list[str], exclusions: list[Exclusion],
                           retry_after: list[float]) -> APIError:
        requested = requested_models(chat)
        if not exclusions:
            known = [m for m in requested if m not in unknown]
            if not known:
                return APIError(400, f"{unknown[0]} is not a valid model ID; list models with GET /api/v1/models",
                                metadata={"availability": {"code": "model_not_found", "requested_models": requested}})
            return APIError(503, f"No provider serves {known[0]} yet. Add a [[providers]] entry and an [[endpoints]]"
                            f" entry for it to your routeway config (see routeway.example.toml), or set an upstream key"
                            f" such as OPENROUTER_API_KEY, then restart routeway.", error_type="provider_unavailable",
                            metadata={"availability": {"code": "no_endpoints", "requested_models": requested}})
        details = "; ".join(f"{x.provider}: {x.reason}" for x in exclusions)
        excluded_by = [{"model": x.model, "provider": x.provider, "reason": x.reason} for x in exclusions]
        refusals = [x.refusal for x in exclusions if x.refusal is not None]
        if len(refusals) == len(exclusions):  # nothing but guardrails stands in the way: the policy refuses
            return APIError(403, f"Guardrails forbid every endpoint of {', '.join(requested)}: {details}.",
                            metadata={**refusals[0].metadata, "availability": {"code": "guardrail_filtered",
                                                                              "excluded_by": excluded_by}})
        capable = [x for x in exclusions if not x.by_request]
        if capable and all(x.temporary for x in capable):
            wait = max(1, int(min(retry_after) + 0.999))
            unavailable = all("rate limited" in x.reason for x in capable)
            return APIError(429 if unavailable else 503,
                            f"Every endpoint of {', '.join(requested)} is unavailable right now ({details});"
                            f" retry in {wait} s.",
                            headers={"retry-after": str(wait)},
                            metadata={"availability": {"code": "temporarily_unavailable", "retry_after": wait,
                                                       "excluded_by": excluded_by}})
        headline = "No endpoints found that support tool use" if all(
            x.reason == "no tool use support" for x in exclusions) else "No endpoints found that can take this request"
        return APIError(404, f"{headline} for {', '.join(requested)}: {details}.",
                        metadata={"availability": {"code": "constraint_filtered", "excluded_by": excluded_by}})


def guardrail_refusal(refusal: Refusal) -> APIError:
    return APIError(403, f"Guardrail \"{refusal.guardrail}\" forbids this request: {refusal.reason}"
                         f" ({refusal.rule}).", metadata=refusal.metadata)


def _sort_of(prefs: ProviderPreferences) -> str | None:
    if prefs.sort is None:
        return None
    return prefs.sort.by if isinstance(prefs.sort, SortConfig) else prefs.sort


def _thresholds(value: Any) -> list[tuple[str, float]]:
    if isinstance(value, dict):
        return [(p, float(v)) for p, v in value.items() if p in ("p50", "p75", "p90", "p99")]
    return [("p50", float(value))]
