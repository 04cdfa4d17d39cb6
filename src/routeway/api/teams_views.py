"""JSON views of guardrails, their assignments, presets and a key's budgets, in OpenRouter's field names."""

from __future__ import annotations

from typing import Any

import msgspec

from routeway.ledger.book import KeyState
from routeway.ledger.money import nano_to_usd
from routeway.ledger.periods import iso, period_end_ms
from routeway.teams.guardrails import Guardrail
from routeway.teams.policy import Rules
from routeway.teams.presets import Preset, Version

_RULE_FIELDS = [name for name in Rules.__struct_fields__ if name != "description"]


def guardrail_view(g: Guardrail) -> dict[str, Any]:
    rules = msgspec.structs.asdict(g.rules)
    return {"id": g.id, "name": g.name, "description": g.rules.description,
            **{name: rules[name] for name in _RULE_FIELDS}, "account_default": g.account_default,
            "workspace_id": None, "created_at": iso(g.created_at), "updated_at": iso(g.updated_at)}


def assignment_view(g: Guardrail, key: KeyState, assigned_at: int) -> dict[str, Any]:
    return {"id": f"{g.id}:{key.hash}", "guardrail_id": g.id, "key_hash": key.hash, "key_name": key.name,
            "key_label": key.label, "assigned_by": None, "created_at": iso(assigned_at)}


def version_view(preset: Preset, v: Version) -> dict[str, Any]:
    return {"id": v.id, "preset_id": preset.id, "version": v.version, "config": v.config,
            "system_prompt": v.system_prompt, "creator_id": preset.account_id, "created_at": iso(v.created_at),
            "updated_at": iso(v.created_at)}


def preset_view(preset: Preset, with_version: bool = False) -> dict[str, Any]:
    latest = preset.latest
    view: dict[str, Any] = {
        "id": preset.id, "slug": preset.slug, "name": preset.name, "description": preset.description,
        "status": preset.status, "status_updated_at": iso(preset.updated_at),
        "designated_version_id": latest.id if latest else None, "creator_user_id": None, "workspace_id": None,
        "created_at": iso(preset.created_at), "updated_at": iso(preset.updated_at)}
    if with_version:
        view["designated_version"] = version_view(preset, latest) if latest else None
    return view


def budgets_view(key: KeyState, guardrails: list[Guardrail], now: int) -> tuple[list[dict[str, Any]],
                                                                                 dict[str, Any] | None]:
    """``GET /key``'s ``budgets[]`` in enforcement order (account default guardrails, the key's own, its own
    limit) and ``effective_budget``: the one with the least left, which is the one that would refuse first."""
    budgets: list[dict[str, Any]] = []
    for g in guardrails:
        budget = g.budget
        if budget is None:
            continue
        spend = key.spent(budget.reset, now)
        budgets.append({
            "scope": "workspace_default_key" if g.account_default else "api_key", "guardrail_id": g.id,
            "budget_id": None, "include_byok": g.rules.include_byok_in_budgets,
            "limit_usd": nano_to_usd(budget.limit), "spend_usd": nano_to_usd(spend),
            "remaining_usd": nano_to_usd(budget.limit - spend), "reset_interval": budget.reset,
            "resets_at": iso(period_end_ms(budget.reset, now)) if budget.reset else None})
    if key.limit is not None:
        spend = key.limit_usage(now)
        budgets.append({
            "scope": "key_limit", "guardrail_id": None, "budget_id": None, "include_byok": key.include_byok_in_limit,
            "limit_usd": nano_to_usd(key.limit), "spend_usd": nano_to_usd(spend),
            "remaining_usd": nano_to_usd(key.limit - spend), "reset_interval": key.limit_reset,
            "resets_at": iso(period_end_ms(key.limit_reset, now)) if key.limit_reset else None})
    effective = min(budgets, key=lambda b: b["remaining_usd"]) if budgets else None
    return budgets, effective
