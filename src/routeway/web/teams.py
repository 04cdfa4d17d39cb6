"""The Presets and Guardrails pages: list the account's presets (each save a new version) and guardrails
(rules, budget and each assigned key's spend against it, charted over the last ``BUDGET_DAYS`` days from
the ledger, so what every process charged), with forms to add them; the operator viewing all accounts sees
every account's guardrails. Changes go through ``services.presets`` and ``services.guardrails`` with the
API's own validation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec

from routeway.api.guardrails import GuardrailCreate, checked, rules_of
from routeway.api.presets import PresetCreate, checked_config
from routeway.errors import APIError
from routeway.teams.guardrails import Guardrail
from routeway.web import queries, series
from routeway.web.core import redirect

if TYPE_CHECKING:
    from routeway.api.http import Response
    from routeway.ledger.book import KeyState
    from routeway.store.base import Store
    from routeway.web.dashboard import Ctx, Dashboard

INTERVALS = ("daily", "weekly", "monthly", "lifetime")
BUDGET_DAYS = 30
MONTH_DAYS = 31  # the charges read reach back to the first shown day's monthly window


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
        if account_id is not None:
            guardrails = services.guardrails.of_account(account_id)
            keys = {k.hash: k for k in services.accounts.keys_of(account_id)}
        else:  # the operator viewing all accounts: every account's guardrails, read-only
            guardrails = sorted(services.guardrails.by_id.values(), key=lambda g: (g.account_id, g.created_at))
            keys = {k.hash: k for a in services.accounts.all() for k in services.accounts.keys_of(a.id)}
        charts, spent = await _budget_charts(services.store, account_id, guardrails, keys, ctx.now_ms)
        names = {a.id: a.name for a in services.accounts.all()} if account_id is None else {}
        return ctx.render("guardrails.html", guardrails=guardrails, keys=keys, intervals=INTERVALS, charts=charts,
                          spent_of=spent, account_names=names, no_account=account_id is None)

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


def assigned(guardrail: Guardrail, keys: dict[str, KeyState]) -> list[KeyState]:
    return [k for h, k in keys.items()
            if k.account_id == guardrail.account_id and not k.is_management
            and (guardrail.account_default or h in guardrail.keys)]


async def _budget_charts(store: Store, account_id: str | None, guardrails: list[Guardrail],
                         keys: dict[str, KeyState], now_ms: int
                         ) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], float]]:
    """Each budgeted guardrail's chart (by its id), and each (guardrail id, key hash)'s spend in the budget's
    current window, in USD."""
    budgeted = [g for g in guardrails if g.budget is not None]
    if not budgeted:
        return {}, {}
    days = series.day_range(now_ms, BUDGET_DAYS)
    since = (days[0] - MONTH_DAYS) * queries.DAY_MS
    charged: dict[str, dict[int, int]] = {}
    for key_hash, day, nano in await queries.key_charge_days(store, account_id, since):
        charged.setdefault(key_hash, {})[day] = nano
    before = await queries.key_charges_before(store, account_id, since)
    charts: dict[str, dict[str, Any]] = {}
    spent: dict[tuple[str, str], float] = {}
    for g in budgeted:
        budget = g.budget
        assert budget is not None
        own = assigned(g, keys)
        chart = series.budget_spend(budget.limit / 1e9, budget.reset, [(k.name, k.hash) for k in own], days,
                                    charged, before)
        charts[g.id] = chart
        for k, line in zip(own, chart["series"][1:], strict=True):
            spent[(g.id, k.hash)] = line["values"][-1]
    return charts, spent


def _names(text: str | None) -> list[str] | None:
    """A form's comma- or line-separated slugs; empty means no list (the rule is off)."""
    names = [n.strip() for n in (text or "").replace("\n", ",").split(",") if n.strip()]
    return names or None


def _problem(ctx: Ctx, exc: Exception, page: str) -> Response:
    message = exc.message if isinstance(exc, APIError) else str(exc)
    ctx.flash("error", message.removeprefix("Invalid request: "))
    return redirect(page)
