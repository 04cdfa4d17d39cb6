"""The guardrails API (management keys), as OpenRouter's: GET|POST /guardrails, GET|PATCH|DELETE
/guardrails/{id}, the key assignments (GET|POST /guardrails/{id}/assignments/keys, POST …/keys/remove,
GET /guardrails/assignments/keys). ``account_default: true`` (routeway's) applies one to every key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta, Struct

from routeway.api.auth import authenticate
from routeway.api.http import Request, Response, json_response
from routeway.api.teams_views import assignment_view, guardrail_view
from routeway.errors import APIError
from routeway.ledger.book import KeyState
from routeway.teams.guardrails import Guardrail
from routeway.teams.policy import Rules
from routeway.wire.decode import REFUSALS, decode, refusal

if TYPE_CHECKING:
    from routeway.services import Services

Name = Annotated[str, Meta(min_length=1, max_length=200)]
MAX_PAGE = 100


class GuardrailCreate(Rules, kw_only=True, forbid_unknown_fields=False):
    name: Name
    account_default: bool = False  # routeway: the account's default guardrail, on every key


class GuardrailPatch(Rules, kw_only=True, forbid_unknown_fields=False):
    """PATCH /guardrails/{id}: the fields given replace the guardrail's (null clears one)."""
    name: Name | None = None
    account_default: bool | None = None


class KeyHashes(Struct, forbid_unknown_fields=False):
    key_hashes: Annotated[list[Annotated[str, Meta(max_length=128)]], Meta(min_length=1, max_length=1000)]


def checked(body: GuardrailCreate) -> GuardrailCreate:
    if (body.limit_usd is None) != (body.reset_interval is None):
        raise APIError(400, "Invalid request: limit_usd and reset_interval go together (give both or neither;"
                            " reset_interval \"lifetime\" never resets)",
                       metadata={"param": "limit_usd" if body.limit_usd is None else "reset_interval"})
    return body


def rules_of(body: GuardrailCreate) -> Rules:
    fields = msgspec.structs.asdict(body)
    return Rules(**{name: fields[name] for name in Rules.__struct_fields__})


def routes(services: Services) -> list[tuple[str, str, Any]]:
    guardrails = services.guardrails
    limit = services.settings.max_body_bytes

    def owned(key: KeyState, guardrail_id: str) -> Guardrail:
        found = guardrails.get(key.account_id, guardrail_id)
        if found is None:
            raise APIError(404, f"No guardrail with id {guardrail_id} in this account.")
        return found

    def page(request: Request, items: list[Any]) -> list[Any]:
        offset = request.query_int("offset", 0)
        size = min(request.query_int("limit", MAX_PAGE), MAX_PAGE)
        return items[offset:offset + size]

    def api_keys(key: KeyState, hashes: list[str]) -> list[KeyState]:
        found = []
        for key_hash in hashes:
            target = services.accounts.key(key_hash)
            if target is None or target.deleted or target.account_id != key.account_id or target.is_management:
                raise APIError(404, f"No key with hash {key_hash} in this account.", metadata={"param": "key_hashes"})
            found.append(target)
        return found

    async def list_guardrails(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        mine = guardrails.of_account(key.account_id)
        return json_response({"data": [guardrail_view(g) for g in page(request, mine)], "total_count": len(mine)})

    async def create(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        body = checked(decode(await request.body(limit), GuardrailCreate))
        created = await guardrails.create(key.account_id, body.name, rules_of(body), body.account_default)
        return json_response({"data": guardrail_view(created)}, status=201)

    async def get(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        return json_response({"data": guardrail_view(owned(key, request.path_params["id"]))})

    async def update(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        target = owned(key, request.path_params["id"])
        patch = decode(await request.body(limit), dict[str, Any])
        current = {"name": target.name, "account_default": target.account_default,
                   **msgspec.structs.asdict(target.rules)}
        try:  # the changed fields over the current ones, checked as a whole guardrail
            body = checked(msgspec.convert({**current, **patch}, GuardrailCreate))
        except REFUSALS as exc:
            raise refusal(exc) from None
        await guardrails.update(target, body.name, rules_of(body), body.account_default)
        return json_response({"data": guardrail_view(target)})

    async def delete(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        await guardrails.delete(owned(key, request.path_params["id"]))
        return json_response({"deleted": True})

    async def list_assignments(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        target = owned(key, request.path_params["id"])
        rows = [(target, k, at) for h, at in target.keys.items()
                if (k := services.accounts.key(h)) is not None and not k.deleted]
        return json_response({"data": [assignment_view(*row) for row in page(request, rows)],
                              "total_count": len(rows)})

    async def all_assignments(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        rows = [(g, k, at) for g in guardrails.of_account(key.account_id) for h, at in g.keys.items()
                if (k := services.accounts.key(h)) is not None and not k.deleted]
        return json_response({"data": [assignment_view(*row) for row in page(request, rows)],
                              "total_count": len(rows)})

    async def assign(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        target = owned(key, request.path_params["id"])
        body = decode(await request.body(limit), KeyHashes)
        count = await guardrails.assign(target, api_keys(key, body.key_hashes))
        return json_response({"assigned_count": count})

    async def unassign(request: Request) -> Response:
        key = authenticate(services, request, management=True)
        target = owned(key, request.path_params["id"])
        body = decode(await request.body(limit), KeyHashes)
        count = await guardrails.unassign(target, api_keys(key, body.key_hashes))
        return json_response({"unassigned_count": count})

    return [
        ("GET", "/guardrails", list_guardrails),
        ("POST", "/guardrails", create),
        ("GET", "/guardrails/assignments/keys", all_assignments),
        ("GET", "/guardrails/{id}", get),
        ("PATCH", "/guardrails/{id}", update),
        ("DELETE", "/guardrails/{id}", delete),
        ("GET", "/guardrails/{id}/assignments/keys", list_assignments),
        ("POST", "/guardrails/{id}/assignments/keys", assign),
        ("POST", "/guardrails/{id}/assignments/keys/remove", unassign),
    ]
