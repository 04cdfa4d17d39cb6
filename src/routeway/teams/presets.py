"""Presets: named, versioned request templates of an account, in memory and rebuilt from the store at
start-up. A chat request names one as ``"model": "@preset/SLUG"``, ``"model": "MODEL@preset/SLUG"`` or
``"preset": "SLUG"`` (``SLUG@N`` pins version N; else the latest). The preset's configuration is merged
under the request's own fields (shallow: a field the request sets wins), its tools come first with the
request's added after them by function name, and its system prompt is put before the request's messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from routeway.errors import APIError, store_unavailable
from routeway.ledger.accounts import now_ms
from routeway.ledger.ids import new_id
from routeway.store.base import Op, Store, StoreUnwritable
from routeway.store.changes import ChangeRepository
from routeway.store.presets import PresetRepository, PresetRow, PresetVersionRow

MARKER = "@preset/"
# The inference fields that describe a request's content, not its configuration: never kept in a preset.
NOT_CONFIG = frozenset({"messages", "prompt", "input", "stream", "preset", "system", "instructions"})
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Version:
    id: str
    version: int
    config: dict[str, Any]
    system_prompt: str | None
    created_at: int


@dataclass(slots=True)
class Preset:
    id: str
    account_id: str
    slug: str
    name: str
    description: str | None
    status: str
    created_at: int
    updated_at: int
    versions: list[Version] = field(default_factory=list)  # oldest first; the last is the designated one

    @property
    def latest(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    def version(self, number: int | None) -> Version | None:
        if number is None:
            return self.latest
        return next((v for v in self.versions if v.version == number), None)


def config_of(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A request body's configuration (what a preset keeps) and its system prompt, if any."""
    config = {k: v for k, v in body.items() if k not in NOT_CONFIG}
    system = body.get("system") or body.get("instructions")
    if system is None:
        for message in body.get("messages") or ():
            if (isinstance(message, dict) and message.get("role") == "system"
                    and isinstance(message.get("content"), str)):
                system = message["content"]
                break
    return config, system if isinstance(system, str) else None


def reference(body: dict[str, Any]) -> tuple[str, int | None, str | None] | None:
    """(slug, pinned version, the model the request names besides the preset) when the body names a preset."""
    model, named = body.get("model"), body.get("preset")
    own_model: str | None = model if isinstance(model, str) else None
    text: str | None = None
    if isinstance(model, str) and MARKER in model:
        own_model, _, text = model.partition(MARKER)
        own_model = own_model.removesuffix("@") or None  # "openai/gpt-4o@preset/x" names its model too
    elif isinstance(named, str) and named:
        text = named
    if text is None:
        return None
    slug, _, pinned = text.partition("@")
    if pinned and (not pinned.isdigit() or len(pinned) > 9):
        raise APIError(400, f"Invalid request: preset version {pinned!r} is not a number", metadata={"param": "preset"})
    return slug, int(pinned) if pinned else None, own_model


def merge(body: dict[str, Any], version: Version, own_model: str | None) -> dict[str, Any]:
    merged = {**version.config, **{k: v for k, v in body.items() if k != "preset" and v is not None}}
    if own_model:
        merged["model"] = own_model
    elif isinstance(body.get("model"), str) and MARKER in body["model"]:
        merged.pop("model", None)
        if "model" in version.config:
            merged["model"] = version.config["model"]
    preset_tools, own_tools = version.config.get("tools"), body.get("tools")
    if isinstance(preset_tools, list) and isinstance(own_tools, list):
        names = {_tool_name(t) for t in preset_tools}
        merged["tools"] = preset_tools + [t for t in own_tools if _tool_name(t) not in names]
    if version.system_prompt and isinstance(merged.get("messages"), list):
        merged["messages"] = [{"role": "system", "content": version.system_prompt}, *merged["messages"]]
    return merged


def _tool_name(tool: Any) -> Any:
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        return tool["function"].get("name")
    return id(tool)


class Presets:
    def __init__(self, store: Store, logged: bool = False) -> None:
        self.store = store
        self.rows = PresetRepository(store)
        self.by_id: dict[str, Preset] = {}
        self.logged = logged  # other processes share the store: each save goes to the change log too

    def load(self) -> None:
        for row in self.rows.all_now():
            self.by_id[row.id] = Preset(*row)
        for v in self.rows.versions_now():
            preset = self.by_id.get(v.preset_id)
            if preset is not None:
                preset.versions.append(Version(v.id, v.version, msgspec.json.decode(v.config), v.system_prompt,
                                               v.created_at))

    async def reload(self, preset_id: str) -> None:
        """Another process saved this preset: take the store's version of it and its versions."""
        row, versions = await self.rows.one(preset_id)
        if row is None:
            self.by_id.pop(preset_id, None)
            return
        preset = self.by_id[preset_id] = Preset(*row)
        preset.versions = [Version(v.id, v.version, msgspec.json.decode(v.config), v.system_prompt, v.created_at)
                           for v in versions]

    def of_account(self, account_id: str) -> list[Preset]:
        return sorted((p for p in self.by_id.values() if p.account_id == account_id), key=lambda p: p.created_at)

    def get(self, account_id: str, slug: str) -> Preset | None:
        return next((p for p in self.by_id.values() if p.account_id == account_id and p.slug == slug), None)

    def resolve(self, account_id: str, raw: bytes) -> bytes:
        """A chat body with its preset merged in; any other body as it came (its parser says what is wrong)."""
        if b"preset" not in raw:  # a substring test: most requests name no preset and are not decoded twice
            return raw
        try:
            body = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return raw
        merged = self.apply(account_id, body) if isinstance(body, dict) else None
        return raw if merged is None else _encode(merged)

    def apply(self, account_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The body with its preset merged in, or None when it names no preset."""
        ref = reference(body)
        if ref is None:
            return None
        slug, pinned, own_model = ref
        preset = self.get(account_id, slug)
        if preset is None or preset.status != "active":
            raise APIError(404, f"No active preset {slug!r} in this account; list them with GET /api/v1/presets.",
                           metadata={"param": "preset"})
        version = preset.version(pinned)
        if version is None:
            raise APIError(404, f"Preset {slug!r} has no version {pinned}.", metadata={"param": "preset"})
        return merge(body, version, own_model)

    async def save(self, account_id: str, slug: str, *, name: str | None = None, description: str | None = None,
                   status: str | None = None, config: dict[str, Any] | None = None,
                   system_prompt: str | None = None) -> Preset:
        """Create the preset or change it; a new configuration is a new version."""
        now = now_ms()
        preset = self.get(account_id, slug)
        ops: list[Op] = []
        if preset is None:
            preset = Preset(new_id("pre"), account_id, slug, name or slug, description, status or "active", now, now)
            ops.append(PresetRepository.insert(PresetRow(preset.id, account_id, slug, preset.name, description,
                                                         preset.status, now, now)))
            config = config if config is not None else {}
        else:
            ops.append(PresetRepository.update(preset.id, name or preset.name,
                                               description if description is not None else preset.description,
                                               status or preset.status, now))
        version: Version | None = None
        if config is not None:
            latest = preset.latest
            number = latest.version + 1 if latest else 1
            version = Version(new_id("prv"), number, config, system_prompt, now)
            ops.append(PresetRepository.insert_version(PresetVersionRow(
                version.id, preset.id, number, _encode(config).decode(), system_prompt, now)))
        if self.logged:
            ops.append(ChangeRepository.append("preset", preset.id, now))
        try:
            await self.store.write(ops)
        except StoreUnwritable as exc:
            raise store_unavailable(exc.problem) from None
        self.by_id[preset.id] = preset
        preset.name = name or preset.name
        preset.description = description if description is not None else preset.description
        preset.status = status or preset.status
        preset.updated_at = now
        if version is not None:
            preset.versions.append(version)
        return preset
