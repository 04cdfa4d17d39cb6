"""The chat playground. The browser streams from POST /api/v1/chat/completions itself (static/playground.js),
so answers take exactly the API's path and are metered like any other request.

Its API key: the server mints one key per signed-in session on the page's first request for it
(POST /playground/key, CSRF-checked), named "playground (dashboard)", expiring when the session does,
and deleted at sign-out. The secret lives only in the server's session memory and the page's script;
it shows in the Keys page's list (marked as the playground's) like any key of the account.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routeway.api.http import json_response
from routeway.ledger.periods import iso

if TYPE_CHECKING:
    from routeway.api.http import Response
    from routeway.services import Services
    from routeway.web.dashboard import Ctx, Dashboard

KEY_NAME = "playground (dashboard)"
EFFORTS = ("minimal", "low", "medium", "high", "xhigh")


def routes(dashboard: Dashboard) -> list[tuple[str, str, Any]]:
    services = dashboard.services
    catalog = services.catalog

    async def page(ctx: Ctx) -> Response:
        ctx.user()
        served = sorted((m for m in catalog.models.values() if catalog.endpoints_for(m.id)), key=lambda m: m.name)
        chosen = ctx.query.get("model")
        if chosen not in {m.id for m in served}:
            chosen = served[0].id if served else None
        return ctx.render("playground.html", models=served, chosen=chosen, efforts=EFFORTS,
                          no_account=ctx.account_scope() is None)

    async def key(ctx: Ctx) -> Response:
        session = ctx.user()
        account_id = ctx.account_required()
        current = session.playground
        state = services.accounts.key(current[1]) if current else None
        if state is None or state.deleted or state.disabled or state.account_id != account_id:
            secret, state = await services.accounts.create_key(
                ctx.account(), name=KEY_NAME, is_management=False,
                expires_at=int(session.expires * 1000))
            session.playground = (secret, state.hash)
        assert session.playground is not None
        return json_response({"key": session.playground[0], "name": state.name, "label": state.label,
                              "expires_at": iso(state.expires_at)}, extra_headers={"cache-control": "no-store"})

    return [("GET", "/playground", page), ("GET", "/chat", page), ("POST", "/playground/key", key)]


async def forget_key(services: Services, playground: tuple[str, str] | None) -> None:
    """Delete a session's playground key (at sign-out, or when the operator switches accounts)."""
    if playground is None:
        return
    key = services.accounts.key(playground[1])
    if key is not None and not key.deleted:
        await services.accounts.update_key(key, {"deleted": True, "disabled": True})
