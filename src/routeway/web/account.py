"""Signing in (management key or operator key), signing out, and the operator's choice of account."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from routeway.ledger.accounts import now_ms
from routeway.web.core import PageError, redirect, safe_next
from routeway.web.playground import forget_key

if TYPE_CHECKING:
    from routeway.api.http import Response
    from routeway.web.dashboard import Ctx, Dashboard


def routes(dashboard: Dashboard) -> list[tuple[str, str, Any]]:
    services = dashboard.services
    sessions = dashboard.sessions

    async def signin_form(ctx: Ctx) -> Response:
        if ctx.session is not None and ctx.session.signed_in:
            return redirect(safe_next(ctx.query.get("next")))
        if ctx.session is None:  # an anonymous session only to carry the form's CSRF token
            ctx.session = await sessions.start()
            ctx.cookies.append(sessions.cookie(ctx.session, ctx.request))
        return ctx.render("signin.html", next=safe_next(ctx.query.get("next")), error=None)

    async def signin(ctx: Ctx) -> Response:
        secret = ctx.form.get("key", "").strip()
        target = safe_next(ctx.form.get("next"))
        client = ctx.request.scope.get("client")
        address = client[0] if client else "unknown"
        await services.throttle.check_signin(address, hashlib.sha256(secret.encode()).hexdigest())
        operator_key = services.settings.admin_key
        if operator_key and secret and hmac.compare_digest(secret.encode(), operator_key.encode()):
            session = await sessions.start(operator=True)
        else:
            key = services.accounts.find_key(secret) if secret else None
            problem = _refusal(key)
            if problem:
                await services.throttle.signin_failed(address)
                return ctx.render("signin.html", status=401, next=target, error=problem)
            assert key is not None
            session = await sessions.start(key_hash=key.hash, account_id=key.account_id)
        if ctx.session is not None:
            await sessions.end(ctx.session)
        for playground in sessions.take_evicted_playgrounds():  # the key's oldest sessions, pushed out
            await forget_key(services, playground)
        return redirect(target, [sessions.cookie(session, ctx.request)])

    async def signout(ctx: Ctx) -> Response:
        if ctx.session is not None:
            await forget_key(services, await sessions.end(ctx.session))
        return redirect("/", [sessions.clear_cookie()])

    async def choose_account(ctx: Ctx) -> Response:
        session = ctx.user()
        if not session.operator:
            raise PageError(403, "Only the operator can switch accounts.")
        wanted = ctx.form.get("account") or None
        if wanted is not None and services.accounts.get(wanted) is None:
            raise PageError(404, f"No account {wanted}.")
        if session.account_id != wanted and session.playground is not None:
            await forget_key(services, session.playground)
            session.playground = None
        session.account_id = wanted
        return redirect(safe_next(ctx.form.get("next")))

    return [("GET", "/signin", signin_form), ("POST", "/signin", signin), ("POST", "/signout", signout),
            ("POST", "/account", choose_account)]


def _refusal(key: Any) -> str | None:
    if key is None:
        return "That key is not known here. Sign in with a management key or the operator key (ROUTEWAY_ADMIN_KEY)."
    if not key.is_management:
        return ("That is an API key, for inference. The dashboard needs a management key: an operator issues one with"
                " `routeway keys create <account-id>`.")
    if key.disabled:
        return "That management key is disabled."
    if key.expires_at is not None and key.expires_at <= now_ms():
        return "That management key has expired."
    return None

