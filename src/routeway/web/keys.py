"""The Keys page: create (the secret is shown once), list, set a limit and its reset, disable or enable,
delete. Changes go through ``services.accounts`` like the management API's, with the same validation
(``KeyCreate``, ``KeyPatch`` and ``expiry_ms`` from api/keys.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from routeway.api.keys import KeyCreate, KeyPatch, expiry_ms
from routeway.errors import APIError
from routeway.ledger.book import KeyState
from routeway.ledger.money import MAX_USD, usd_to_nano
from routeway.web.core import PageError, redirect

if TYPE_CHECKING:
    from routeway.api.http import Response
    from routeway.web.dashboard import Ctx, Dashboard

RESETS = ("daily", "weekly", "monthly")


def routes(dashboard: Dashboard) -> list[tuple[str, str, Any]]:
    services = dashboard.services
    accounts = services.accounts

    def owned(ctx: Ctx) -> KeyState:
        account_id = ctx.account_required()
        key = accounts.key(ctx.params["hash"])
        if key is None or key.deleted or key.account_id != account_id or key.is_management:
            raise PageError(404, "No such key in this account.")
        return key

    async def list_keys(ctx: Ctx) -> Response:
        account_id = ctx.account_scope()
        session = ctx.user()
        keys = [] if account_id is None else sorted(
            (k for k in accounts.keys_of(account_id) if not k.is_management),
            key=lambda k: k.created_at, reverse=True)
        secret, session.new_secret = session.new_secret, None
        playground_hash = session.playground[1] if session.playground else None
        return ctx.render("keys.html", keys=keys, new_secret=secret, resets=RESETS, now=ctx.now_ms, max_usd=MAX_USD,
                          playground_hash=playground_hash, no_account=account_id is None)

    async def create(ctx: Ctx) -> Response:
        account = ctx.account()
        form = ctx.form
        try:
            body = msgspec.convert({"name": form.get("name", "").strip(), "limit": _usd(form.get("limit")),
                                    "limit_reset": form.get("limit_reset") or None}, KeyCreate)
            expires = expiry_ms(_iso(form.get("expires_at")))
        except (msgspec.ValidationError, APIError, ValueError) as exc:
            return _problem(ctx, exc)
        secret, key = await accounts.create_key(
            account, name=body.name, is_management=False,
            limit=usd_to_nano(body.limit) if body.limit is not None else None, limit_reset=body.limit_reset,
            expires_at=expires)
        ctx.user().new_secret = (key.name, secret)
        return redirect("/keys")

    async def update(ctx: Ctx) -> Response:
        key = owned(ctx)
        form = ctx.form
        try:
            patch = msgspec.convert({"limit": _usd(form.get("limit")), "limit_reset": form.get("limit_reset") or None,
                                     **({"name": form["name"].strip()} if form.get("name") else {})}, KeyPatch)
        except (msgspec.ValidationError, ValueError) as exc:
            return _problem(ctx, exc)
        limit = None if patch.limit is None or patch.limit is msgspec.UNSET else usd_to_nano(patch.limit)
        changes: dict[str, Any] = {"limit": limit,
                                   "limit_reset": patch.limit_reset}
        if patch.name is not None:
            changes["name"] = patch.name
        await accounts.update_key(key, changes)
        ctx.flash("ok", f"Key “{key.name}” updated.")
        return redirect("/keys")

    async def toggle(ctx: Ctx) -> Response:
        key = owned(ctx)
        await accounts.update_key(key, {"disabled": not key.disabled})
        ctx.flash("ok", f"Key “{key.name}” {'disabled' if key.disabled else 'enabled'}.")
        return redirect("/keys")

    async def delete(ctx: Ctx) -> Response:
        key = owned(ctx)
        await accounts.update_key(key, {"deleted": True, "disabled": True})
        ctx.flash("ok", f"Key “{key.name}” deleted.")
        return redirect("/keys")

    return [("GET", "/keys", list_keys), ("POST", "/keys", create), ("POST", "/keys/{hash}/update", update),
            ("POST", "/keys/{hash}/toggle", toggle), ("POST", "/keys/{hash}/delete", delete)]


def _usd(text: str | None) -> float | None:
    """A form's dollar amount: empty means no limit; anything else must be a number, which KeyCreate and
    KeyPatch bound to 0..MAX_USD (the browser's max= says so first)."""
    text = (text or "").strip().lstrip("$")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"limit {text!r} is not a number of US dollars") from None


def _iso(text: str | None) -> str | None:
    """<input type=datetime-local> sends '2027-01-01T00:00' with no zone: the form says it is UTC."""
    text = (text or "").strip()
    return text or None


def _problem(ctx: Ctx, exc: Exception) -> Response:
    message = exc.message if isinstance(exc, APIError) else str(exc)
    ctx.flash("error", message.removeprefix("Invalid request: "))
    return redirect("/keys")
