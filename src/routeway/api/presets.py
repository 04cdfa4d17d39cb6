"""The presets API (management keys): GET /presets, GET /presets/{slug}, its versions, and saving one —
POST /presets (routeway's: slug, name, config, system_prompt), PATCH /presets/{slug}, and OpenRouter's
POST /presets/{slug}/chat/completions, which keeps an inference body's configuration. Every save of a
configuration is a new version; requests use the latest unless they pin one (``@preset/SLUG@N``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from routeway.api.auth import authenticate
from routeway.api.http import Request, Response, json_response
from routeway.api.teams_views import preset_view, version_view
from routeway.errors import APIError
from routeway.ledger.book import KeyState
from routeway.teams.presets import Preset, config_of
from routeway.wire.chat import parse_chat_request
from routeway.wire.decode import decode

if TYPE_CHECKING:
    from routeway.services import Services

Slug = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Text = Annotated[str, Meta(max_length=2000)]
Prompt = Annotated[str, Meta(max_length=200_000)]
Status = Literal["active", "disabled", "archived"]
MAX_PAGE = 100


class PresetCreate(Struct, forbid_unknown_fields=False):
    slug: Slug
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    description: Text | None = None
    config: dict[str, Any] = {}
    system_prompt: Prompt | None = None


class PresetPatch(Struct, forbid_unknown_fields=False):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    description: Text | None = None
    status: Status | None = None
    config: dict[str, Any] | None = None
    system_prompt: Prompt | None = None


def checked_config(config: dict[str, Any]) -> dict[str, Any]:
    """A preset's configuration must make a valid chat request once messages are added: the same 400s."""
    if "messages" in config or "prompt" in config:
        raise APIError(400, "Invalid request: a preset's config holds configuration, not messages or prompt",
                       metadata={"param": "config"})
    probe = {"model": "probe/probe", **config, "messages": [{"role": "user", "content": "."}]}
    if isinstance(probe.get("model"), str) and "@preset/" in probe["model"]:
        raise APIError(400, "Invalid request: a preset cannot name another preset", metadata={"param": "config.model"})
    parse_chat_request(msgspec.json.encode(probe))
    return config


def routes(services: Services) -> list[tuple[str, str, Any]]:
    presets = services.presets
    limit = services.settings.max_body_bytes

    def owned(key: KeyState, slug: str) -> Preset:
        found = presets.get(key.account_id, slug)
        if found is None:
            raise APIError(404, f"No preset {slug!r} in this account.")
        return found

    async def list_presets(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        mine = presets.of_account(key.account_id)
        offset = request.query_int("offset", 0)
        size = min(request.query_int("limit", MAX_PAGE), MAX_PAGE)
        return json_response({"data": [preset_view(p) for p in mine[offset:offset + size]],
                              "total_count": len(mine)})

    async def create(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        body = decode(await request.body(limit), PresetCreate)
        saved = await presets.save(key.account_id, body.slug, name=body.name, description=body.description,
                                   config=checked_config(body.config), system_prompt=body.system_prompt)
        return json_response({"data": preset_view(saved, with_version=True)}, status=201)  # a new version, always

    async def from_inference(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        slug = request.path_params["slug"]
        _check_slug(slug)
        body = decode(await request.body(limit), dict[str, Any])
        config, system = config_of(body)
        saved = await presets.save(key.account_id, slug, config=checked_config(config), system_prompt=system)
        return json_response({"data": preset_view(saved, with_version=True)})

    async def get(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        return json_response({"data": preset_view(owned(key, request.path_params["slug"]), with_version=True)})

    async def update(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        target = owned(key, request.path_params["slug"])
        patch = decode(await request.body(limit), PresetPatch)
        config = checked_config(patch.config) if patch.config is not None else None
        system = patch.system_prompt
        if config is None and system is not None:  # a new system prompt alone is a new version of the same config
            latest = target.latest
            config = latest.config if latest else {}
        saved = await presets.save(key.account_id, target.slug, name=patch.name, description=patch.description,
                                   status=patch.status, config=config, system_prompt=system)
        return json_response({"data": preset_view(saved, with_version=True)})

    async def versions(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        target = owned(key, request.path_params["slug"])
        newest_first = list(reversed(target.versions))
        offset = request.query_int("offset", 0)
        return json_response({"data": [version_view(target, v) for v in newest_first[offset:offset + MAX_PAGE]],
                              "total_count": len(newest_first)})

    async def version(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        target = owned(key, request.path_params["slug"])
        text = request.path_params["version"]
        found = target.version(int(text)) if text.isdigit() and len(text) <= 9 else None
        if found is None:
            raise APIError(404, f"Preset {target.slug!r} has no version {text}.")
        return json_response({"data": version_view(target, found)})

    return [
        ("GET", "/presets", list_presets),
        ("POST", "/presets", create),
        ("GET", "/presets/{slug}", get),
        ("PATCH", "/presets/{slug}", update),
        ("GET", "/presets/{slug}/versions", versions),
        ("GET", "/presets/{slug}/versions/{version}", version),
        ("POST", "/presets/{slug}/chat/completions", from_inference),
    ]


def _check_slug(slug: str) -> None:
    try:
        msgspec.convert(slug, Slug)
    except msgspec.ValidationError:
        raise APIError(400, f"Invalid request: preset slug {slug!r} must be lowercase letters, digits, '.', '_' or"
                            " '-', at most 64", metadata={"param": "slug"}) from None
