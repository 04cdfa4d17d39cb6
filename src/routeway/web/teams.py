"""The Presets and Guardrails pages: list the account's presets (each save a new version) and guardrails
(rules, budget and each assigned key's spend against it), with forms to add them. Changes go through
``services.presets`` and ``services.guardrails`` with the API's own validation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec

from routeway.api.guardrails import GuardrailCreate, checked, rules_of
from routeway.api.presets import PresetCreate, checked_config
from routeway.errors import APIError
from routeway.web.core import redirect

if TYPE_CHECKING:
    from routeway.api.http import Response
    from routeway.web.dashboard import Ctx, Dashboard

INTERVALS = ("daily", "weekly", "monthly", "lifetime")


def routes(dashboard: Dashboard) -> list[tuple[str, str, Any]]:
    services = dashboard.services

    async def list_presets(ctx: Ctx) -> Response:
        account_id = ctx.account_scope()
        presets = [] if account_id is None else services.presets.of_account(account_id)
        return ctx.render("presets.html", presets=presets, no_account=account_id is None,
                          as_json=lambda value: json.dumps(value, indent=2, sort_keys=True))

    async def save_preset(ctx: Ctx) -> Response:
        account = ctx.account()
        form = ctx.form
        try:
            config = json.loads(form.get("config") or "{}")
            body = msgspec.convert({"slug": form.get("slug", "").strip(), "name": form.get("name") or None,
                                    "config": config, "system_prompt": form.get("system_prompt") or None},
                                   PresetCreate)
            checked_config(body.config)
        except (msgspec.ValidationError, APIError, ValueError) as exc:
            return _problem(ctx, exc, "/presets")
        saved = await services.presets.save(account.id, body.slug, name=body.name, config=body.config,
                                            system_prompt=body.system_prompt)
        ctx.flash("ok", f"Preset “{saved.slug}” saved as version {saved.versions[-1].version}.")
        return redirect("/presets")

    async def list_guardrails(ctx: Ctx) -> Response:
        account_id = ctx.account_scope()
        guardrails = [] if account_id is None else services.guardrails.of_account(account_id)
        keys = {} if account_id is None else {k.hash: k for k in services.accounts.keys_of(account_id)}
        return ctx.render("guardrails.html", guardrails=guardrails, keys=keys, intervals=INTERVALS, now=ctx.now_ms,
                          no_account=account_id is None)

    async def create_guardrail(ctx: Ctx) -> Response:
        account = ctx.account()
        form = ctx.form
        try:
            limit = (form.get("limit_usd") or "").strip()
            body = checked(msgspec.convert({
                "name": form.get("name", "").strip(), "limit_usd": float(limit) if limit else None,
                "reset_interval": (form.get("reset_interval") or None) if limit else None,
                "allowed_models": _names(form.get("allowed_models")),
                "ignored_models": _names(form.get("ignored_models")),
                "allowed_providers": _names(form.get("allowed_providers")),
                "ignored_providers": _names(form.get("ignored_providers")),
                "enforce_zdr": form.get("enforce_zdr") == "on" or None,
                "account_default": form.get("account_default") == "on"}, GuardrailCreate))
        except (msgspec.ValidationError, APIError, ValueError) as exc:
            return _problem(ctx, exc, "/guardrails")
        made = await services.guardrails.create(account.id, body.name, rules_of(body), body.account_default)
        ctx.flash("ok", f"Guardrail “{made.name}” created" + ("" if made.account_default else
                                                              ": assign it to keys with the API to enforce it."))
        return redirect("/guardrails")

    return [("GET", "/presets", list_presets), ("POST", "/presets", save_preset),
            ("GET", "/guardrails", list_guardrails), ("POST", "/guardrails", create_guardrail)]


def _names(text: str | None) -> list[str] | None:
    """A form's comma- or line-separated slugs; empty means no list (the rule is off)."""
    names = [n.strip() for n in (text or "").replace("\n", ",").split(",") if n.strip()]
    return names or None


def _problem(ctx: Ctx, exc: Exception, page: str) -> Response:
    message = exc.message if isinstance(exc, APIError) else str(exc)
    ctx.flash("error", message.removeprefix("Invalid request: "))
    return redirect(page)
