"""JSON views of catalog entries, keys, accounts and generation records, in OpenRouter's field names."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from routeway.catalog import Endpoint, ModelInfo
from routeway.ledger.book import AccountState, KeyState
from routeway.ledger.money import nano_per_million, nano_to_usd, per_token_string
from routeway.ledger.periods import iso
from routeway.routing.health import EndpointHealth


def model_pricing(prompt_nano_per_m: int, completion_nano_per_m: int, cache_read_nano_per_m: int | None = None,
                  cache_write_nano_per_m: int | None = None) -> dict[str, str]:
    pricing = {"prompt": per_token_string(prompt_nano_per_m), "completion": per_token_string(completion_nano_per_m),
               "request": "0", "image": "0", "web_search": "0", "internal_reasoning": "0"}
    if cache_read_nano_per_m is not None:
        pricing["input_cache_read"] = per_token_string(cache_read_nano_per_m)
    if cache_write_nano_per_m is not None:
        pricing["input_cache_write"] = per_token_string(cache_write_nano_per_m)
    return pricing


def _nano(price: Decimal | None) -> int | None:
    return None if price is None else nano_per_million(price)


def architecture(model: ModelInfo) -> dict[str, Any]:
    return {
        "modality": f"{'+'.join(model.input_modalities)}->{'+'.join(model.output_modalities)}",
        "input_modalities": list(model.input_modalities), "output_modalities": list(model.output_modalities),
        "tokenizer": model.tokenizer, "instruct_type": model.instruct_type,
    }


def model_view(model: ModelInfo, endpoints: list[Endpoint]) -> dict[str, Any]:
    top = max(endpoints, key=lambda e: e.context_length) if endpoints else None
    return {
        "id": model.id, "canonical_slug": model.id, "hugging_face_id": model.hugging_face_id or "",
        "name": model.name, "created": model.created, "description": model.description,
        "context_length": model.context_length, "architecture": architecture(model),
        "pricing": model_pricing(nano_per_million(model.prompt_price), nano_per_million(model.completion_price),
                                 _nano(model.input_cache_read), _nano(model.input_cache_write)),
        "top_provider": {
            "context_length": top.context_length if top else model.context_length,
            "max_completion_tokens": (top.max_output if top else model.max_output),
            "is_moderated": False,
        },
        "per_request_limits": None, "supported_parameters": list(model.supported_parameters),
        "default_parameters": None, "supported_voices": None, "knowledge_cutoff": None,
        "links": {"details": f"/api/v1/models/{model.id}/endpoints"}, "endpoint_count": len(endpoints),
    }


def endpoint_view(endpoint: Endpoint, health: EndpointHealth, now: float) -> dict[str, Any]:
    model = endpoint.model
    return {
        "name": f"{endpoint.provider.label} | {model.id}", "model_name": model.name, "model_id": model.id,
        "context_length": endpoint.context_length,
        "pricing": model_pricing(endpoint.prompt_nano_per_m, endpoint.completion_nano_per_m,
                                 endpoint.cache_read_nano_per_m, endpoint.cache_write_nano_per_m),
        "provider_name": endpoint.provider.label, "tag": endpoint.tag, "quantization": endpoint.quantization,
        "max_completion_tokens": endpoint.max_output, "max_prompt_tokens": None,
        "supported_parameters": list(endpoint.supported_parameters), "status": health.status(now),
        "service_tier": None, "uptime_last_5m": health.uptime(300, now), "uptime_last_30m": health.uptime(1800, now),
        "uptime_last_1d": health.uptime(86400, now), "supports_implicit_caching": False,
        "supports_diarization": False,
        "supports_tool_choice": {"auto": True, "function": True, "none": True, "required": True},
        "native_tools": {}, "latency_last_30m": health.percentiles(1, 1800, now),
        "throughput_last_30m": health.percentiles(2, 1800, now),
        "breaker_state": health.breaker.state, "data_collection": endpoint.provider.data_collection,
        "zdr": endpoint.provider.zdr,
    }


def key_view(key: KeyState, now_ms: int) -> dict[str, Any]:
    return {
        "hash": key.hash, "name": key.name, "label": key.label, "disabled": key.disabled,
        "limit": nano_to_usd(key.limit) if key.limit is not None else None,
        "limit_remaining": nano_to_usd(r) if (r := key.limit_remaining(now_ms)) is not None else None,
        "limit_reset": key.limit_reset, "include_byok_in_limit": key.include_byok_in_limit,
        "usage": nano_to_usd(key.usage), "usage_daily": nano_to_usd(key.usage_in("daily", now_ms)),
        "usage_weekly": nano_to_usd(key.usage_in("weekly", now_ms)),
        "usage_monthly": nano_to_usd(key.usage_in("monthly", now_ms)),
        "byok_usage": 0.0, "byok_usage_daily": 0.0, "byok_usage_weekly": 0.0, "byok_usage_monthly": 0.0,
        "is_management_key": key.is_management, "last_used_at": None, "creator_user_id": None,
        "external_user": None, "workspace_id": "default",
        "created_at": iso(key.created_at), "updated_at": iso(key.updated_at), "expires_at": iso(key.expires_at),
    }


def account_view(account: AccountState) -> dict[str, Any]:
    return {
        "id": account.id, "name": account.name, "created_at": iso(account.created_at),
        "total_credits": nano_to_usd(account.credits), "total_usage": nano_to_usd(account.usage),
        "balance": nano_to_usd(account.credits - account.usage), "reserved": nano_to_usd(account.reserved),
        # exact integers beside the floats: an operator (and the fault soak) can check the book to the nano-dollar
        "total_credits_nano": account.credits, "total_usage_nano": account.usage, "reserved_nano": account.reserved,
    }


def generation_view(r: Mapping[str, Any]) -> dict[str, Any]:
    """OpenRouter's generation fields from a stored record (``store/generations.py``, by column name)."""
    cost = nano_to_usd(r["total_cost_nano"])
    return {
        "id": r["id"], "upstream_id": r["upstream_id"], "total_cost": cost, "usage": cost,
        "cache_discount": None, "upstream_inference_cost": None, "is_byok": False,
        "created_at": iso(r["created_at"]), "model": r["model"], "app_id": None,
        "http_referer": r["http_referer"], "app_title": r["app_title"],
        "streamed": bool(r["streamed"]), "cancelled": bool(r["cancelled"]),
        "provider_name": r["provider_name"], "provider_slug": r["provider_slug"],
        "upstream_model": r["upstream_model"], "latency": r["latency_ms"], "moderation_latency": None,
        "generation_time": r["generation_time_ms"], "finish_reason": r["finish_reason"],
        "native_finish_reason": r["native_finish_reason"], "tokens_prompt": r["tokens_prompt"],
        "tokens_completion": r["tokens_completion"], "native_tokens_prompt": r["native_tokens_prompt"],
        "native_tokens_completion": r["native_tokens_completion"],
        "native_tokens_completion_images": None, "native_tokens_reasoning": r["native_tokens_reasoning"],
        "native_tokens_cached": r["native_tokens_cached"], "num_media_prompt": None, "num_media_completion": None,
        "num_input_audio_prompt": None, "num_search_results": None, "origin": r["http_referer"] or "",
        "api_type": "embeddings" if r["api"] == "embeddings" else "completions",
        "usage_estimated": bool(r["usage_estimated"]),
        "usage_capped": bool(r["usage_capped"]), "usage_rejected": r["usage_rejected"], "status": r["status"],
        "api": r["api"],
        "error": r["error"], "provider_responses": json.loads(r["attempts"]), "api_key_hash": r["key_hash"],
        "data_region": "global", "external_user": None, "preset_id": None, "router": None, "service_tier": None,
        "user_agent": None, "web_search_engine": None, "workspace_id": None, "num_fetches": None,
        "cache_hit": bool(r["cache_hit"]), "cache_savings": nano_to_usd(r["cache_saved_nano"]),
    }
