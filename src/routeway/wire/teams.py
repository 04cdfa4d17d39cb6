"""Guardrail, preset and budget answers as types for the OpenAPI document; field names are OpenRouter's.
Built as dicts by api/teams_views.py."""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct


class Guardrail(Struct):
    id: str
    name: str
    description: str | None
    limit_usd: float | None
    reset_interval: Literal["daily", "weekly", "monthly", "lifetime"] | None
    include_byok_in_budgets: bool
    allowed_models: list[str] | None
    ignored_models: list[str] | None
    allowed_providers: list[str] | None
    ignored_providers: list[str] | None
    enforce_zdr: bool | None
    enforce_zdr_anthropic: bool | None
    enforce_zdr_openai: bool | None
    enforce_zdr_google: bool | None
    enforce_zdr_xai: bool | None
    enforce_zdr_other: bool | None
    account_default: bool  # routeway: applies to every key of the account
    workspace_id: str | None
    created_at: str
    updated_at: str | None


class GuardrailResponse(Struct):
    data: Guardrail


class GuardrailsListResponse(Struct):
    data: list[Guardrail]
    total_count: int


class KeyAssignment(Struct):
    id: str
    guardrail_id: str
    key_hash: str
    key_name: str
    key_label: str
    assigned_by: str | None
    created_at: str


class KeyAssignmentsResponse(Struct):
    data: list[KeyAssignment]
    total_count: int


class AssignedCount(Struct):
    assigned_count: int


class UnassignedCount(Struct):
    unassigned_count: int


class PresetVersion(Struct):
    id: str
    preset_id: str
    version: int
    config: dict[str, Any]
    system_prompt: str | None
    creator_id: str
    created_at: str
    updated_at: str


class Preset(Struct):
    id: str
    slug: str
    name: str
    description: str | None
    status: Literal["active", "disabled", "archived"]
    status_updated_at: str | None
    designated_version_id: str | None
    creator_user_id: str | None
    workspace_id: str | None
    created_at: str
    updated_at: str


class PresetWithVersion(Preset):
    designated_version: PresetVersion | None


class PresetResponse(Struct):
    data: PresetWithVersion


class PresetsListResponse(Struct):
    data: list[Preset]
    total_count: int


class PresetVersionsResponse(Struct):
    data: list[PresetVersion]
    total_count: int


class PresetVersionResponse(Struct):
    data: PresetVersion
