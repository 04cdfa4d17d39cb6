"""Guardrails, presets and engine concurrency against a real routeway on loopback, with the official
openrouter SDK where its calls map: a guardrail budget holds under concurrent requests, denied models and
providers are refused with the guardrail and the rule named, a preset request reaches the upstream exactly
as the explicit one, and max_concurrency holds (fallback, bounded queue, 429)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from openrouter import OpenRouter
from openrouter.utils import RetryConfig

from tests.conftest import Account, Gateway, start_gateway, stop_gateway
from tests.support.dashboard_client import _CSRF, signed_in
from tests.support.loopback import LoopbackServer

WAIT = 30  # bound on waiting for a thread's answer; never an assertion about time


class GatedUpstream(LoopbackServer):
    """An OpenAI-compatible engine whose ``gated*`` models hold each request until the test opens the gate,
    counting the requests in flight per upstream model; ``greedy`` claims far more usage than it could."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []
        self.in_flight: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.gate: asyncio.Event | None = None
        self.arrived = threading.Condition()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)

    def open_gate(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._gate().set)

    def close_gate(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._gate().clear)

    def _gate(self) -> asyncio.Event:
        if self.gate is None:
            self.gate = asyncio.Event()
        return self.gate

    def wait_in_flight(self, model: str, count: int) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: self.in_flight.get(model, 0) >= count, WAIT), self.in_flight

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = body["model"]
        with self.arrived:
            self.bodies.append(body)
            self.in_flight[model] = self.in_flight.get(model, 0) + 1
            self.most[model] = max(self.most.get(model, 0), self.in_flight[model])
            self.arrived.notify_all()
        try:
            if model.startswith("gated"):
                await self._gate().wait()
        finally:
            with self.arrived:
                self.in_flight[model] -= 1
        claimed = 1_000_000 if model == "greedy" else 5
        usage = {"prompt_tokens": claimed, "completion_tokens": claimed, "total_tokens": 2 * claimed}
        return web.json_response({"id": "up-1", "object": "chat.completion", "created": 0, "model": model,
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": f"from {model}"}}],
                                  "usage": usage})


def config(upstream: str) -> str:
    lines = ["[server]", "keepalive_seconds = 5", "",
             "[routing]", "concurrency_queue = 1", "concurrency_wait_seconds = 60", ""]
    for name, zdr in (("eng-a", "false"), ("eng-b", "true"), ("eng-c", "true"), ("eng-d", "true")):
        lines += ["[[providers]]", f'name = "{name}"', 'kind = "openai"', f'base_url = "{upstream}"', f"zdr = {zdr}", ""]
    models = {"team/open": [("eng-a", "a"), ("eng-b", "b")], "team/other": [("eng-b", "b")],
              "team/solo": [("eng-a", "a")], "team/greedy": [("eng-b", "greedy")],
              "team/capped": [("eng-c", "gated-c")], "team/spill": [("eng-c", "gated-c"), ("eng-d", "gated-d")],
              "team/gated": [("eng-d", "gated-d")]}
    for model, endpoints in models.items():
        lines += ["[[models]]", f'id = "{model}"', f'name = "{model}"', "context_length = 8192",
                  'prompt_price = "10"', 'completion_price = "10"',
                  'supported_parameters = ["max_tokens", "temperature", "top_p"]', ""]
        for provider, upstream_model in endpoints:
            lines += ["[[endpoints]]", f'model = "{model}"', f'provider = "{provider}"',
                      f'upstream_model = "{upstream_model}"', "max_output = 100"]
            if provider == "eng-c":
                lines.append("max_concurrency = 1")
            lines.append("")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def engine() -> Iterator[GatedUpstream]:
    server = GatedUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def teams_gateway(engine: GatedUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("teams")
    (root / "routeway.toml").write_text(config(engine.base_url))
    gw = start_gateway(root / "routeway.toml", root / "data")
    yield gw
    stop_gateway(gw)


@pytest.fixture()
def team(teams_gateway: Gateway) -> Account:
    return teams_gateway.account(credits=10, name="team")


def sdk(account: Account, key: str) -> OpenRouter:
    return OpenRouter(api_key=key, server_url=account.gateway.api, retry_config=RetryConfig("none", None, False))


def manage(account: Account, method: str, path: str, json: Any = None) -> httpx.Response:
    return httpx.request(method, account.gateway.api + path, json=json, timeout=WAIT,
                         headers={"authorization": f"Bearer {account.management_key}"})


def key_hash(account: Account, key: str) -> str:
    answer = httpx.get(account.gateway.api + "/key", headers={"authorization": f"Bearer {key}"}, timeout=WAIT)
    return str(answer.json()["data"]["hash"])


def ask(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello team"}], "max_tokens": 10, **extra}


# ---- guardrail budgets ------------------------------------------------------------------------------------
def test_a_daily_guardrail_budget_is_never_overspent_by_concurrent_requests(team: Account, engine: GatedUpstream) -> None:
    client = sdk(team, team.management_key)
    guardrail = client.guardrails.create(name="one cent a day", limit_usd=0.01, reset_interval="daily").data
    assert guardrail.limit_usd == 0.01 and guardrail.reset_interval == "daily"
    assigned = client.guardrails.bulk_assign_keys(id=guardrail.id, key_hashes=[key_hash(team, team.api_key)])
    assert assigned.assigned_count == 1

    # team/greedy's engine claims a million tokens each time: every answer is billed to its reservation's bound
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: team.chat(ask("team/greedy")), range(24)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {200, 403}, statuses
    refused = next(a for a in answers if a.status_code == 403).json()["error"]
    assert "one cent a day" in refused["message"] and refused["metadata"]["rule"] == "limit_usd"
    assert refused["metadata"]["guardrail_id"] == guardrail.id

    charged = -team.ledger_sum() + team.gateway.rows(
        "SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = ? AND kind != 'charge'", (team.id,))[0][0]
    assert 0 < charged <= 10_000_000  # $0.01 in nano-USD: the budget, never more
    assert charged == sum(row[2] for row in team.generations())
    me = httpx.get(team.gateway.api + "/key", headers={"authorization": f"Bearer {team.api_key}"}, timeout=WAIT)
    budgets = me.json()["data"]["budgets"]
    assert [b["scope"] for b in budgets] == ["api_key"] and budgets[0]["guardrail_id"] == guardrail.id
    assert budgets[0]["spend_usd"] == pytest.approx(charged / 1e9)
    assert me.json()["data"]["effective_budget"] == budgets[0]
    assert 0 <= budgets[0]["remaining_usd"] < 0.002  # less than one more request's bound is left


# ---- allowed and denied models and providers ------------------------------------------------------------
def test_a_guardrail_enforces_nothing_until_assigned(team: Account) -> None:
    created = manage(team, "POST", "/guardrails", {"name": "only other", "allowed_models": ["team/other"]})
    assert created.status_code == 201, created.text
    assert team.chat(ask("team/open")).status_code == 200
    assigned = manage(team, "POST", f"/guardrails/{created.json()['data']['id']}/assignments/keys",
                      {"key_hashes": [key_hash(team, team.api_key)]})
    assert assigned.json() == {"assigned_count": 1}
    assert team.chat(ask("team/open")).status_code == 403


def test_a_denied_model_is_refused_with_the_guardrail_and_rule_named(team: Account, engine: GatedUpstream) -> None:
    created = manage(team, "POST", "/guardrails", {"name": "no solo", "ignored_models": ["team/solo"]}).json()["data"]
    manage(team, "POST", f"/guardrails/{created['id']}/assignments/keys", {"key_hashes": [key_hash(team, team.api_key)]})
    seen = len(engine.bodies)
    refused = team.chat(ask("team/solo"))
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert "no solo" in error["message"] and "ignored_models" in error["message"]
    assert error["metadata"] | {"guardrail": "no solo", "rule": "ignored_models", "guardrail_id": created["id"]} \
        == error["metadata"]
    assert len(engine.bodies) == seen  # refused before any upstream call
    assert not [g for g in team.generations()]


def test_routing_skips_the_providers_a_guardrail_forbids(team: Account, engine: GatedUpstream) -> None:
    key = key_hash(team, team.api_key)
    denied = manage(team, "POST", "/guardrails", {"name": "not a", "ignored_providers": ["eng-a"]}).json()["data"]
    manage(team, "POST", f"/guardrails/{denied['id']}/assignments/keys", {"key_hashes": [key]})
    for _ in range(6):  # team/open's two endpoints cost the same: without the guardrail, eng-a is drawn too
        answer = team.chat(ask("team/open", provider={"order": ["eng-a", "eng-b"]}))
        assert answer.status_code == 200 and answer.json()["provider"] == "eng-b", answer.text
    refused = team.chat(ask("team/solo")).json()["error"]  # served by eng-a alone
    assert refused["code"] == 403
    assert "not a" in refused["message"] and "ignored_providers" in refused["message"]
    assert refused["metadata"]["availability"]["code"] == "guardrail_filtered"


def test_zero_data_retention_from_an_account_default_guardrail(team: Account, engine: GatedUpstream) -> None:
    manage(team, "POST", "/guardrails", {"name": "zdr everywhere", "enforce_zdr": True, "account_default": True})
    answer = team.chat(ask("team/open", provider={"order": ["eng-a", "eng-b"]}))
    assert answer.json()["provider"] == "eng-b"  # eng-a keeps data: left out
    refused = team.chat(ask("team/solo")).json()["error"]
    assert refused["code"] == 403 and refused["metadata"]["rule"] == "enforce_zdr"
    assert refused["metadata"]["guardrail"] == "zdr everywhere"


def test_allow_lists_of_two_guardrails_intersect(team: Account) -> None:
    key = key_hash(team, team.api_key)
    for name, models in (("first", ["team/open", "team/other"]), ("second", ["team/other", "team/solo"])):
        made = manage(team, "POST", "/guardrails", {"name": name, "allowed_models": models}).json()["data"]
        manage(team, "POST", f"/guardrails/{made['id']}/assignments/keys", {"key_hashes": [key]})
    assert team.chat(ask("team/other")).status_code == 200
    assert team.chat(ask("team/open")).json()["error"]["metadata"]["guardrail"] == "second"
    assert team.chat(ask("team/solo")).json()["error"]["metadata"]["guardrail"] == "first"


def test_guardrails_through_the_openrouter_sdk(team: Account) -> None:
    client = sdk(team, team.management_key)
    made = client.guardrails.create(name="sdk", allowed_providers=["eng-b"], description="made by the SDK").data
    assert made.allowed_providers == ["eng-b"] and made.description == "made by the SDK"
    assert [g.id for g in client.guardrails.list().result.data] == [made.id]
    changed = client.guardrails.update(id=made.id, name="sdk 2", limit_usd=5, reset_interval="monthly").data
    assert (changed.name, changed.limit_usd, changed.allowed_providers) == ("sdk 2", 5, ["eng-b"])
    assert client.guardrails.get(id=made.id).data.name == "sdk 2"
    key = key_hash(team, team.api_key)
    client.guardrails.bulk_assign_keys(id=made.id, key_hashes=[key])
    assignments = client.guardrails.list_guardrail_key_assignments(id=made.id).result.data
    assert [a.key_hash for a in assignments] == [key]
    assert [a.guardrail_id for a in client.guardrails.list_key_assignments().result.data] == [made.id]
    assert client.guardrails.bulk_unassign_keys(id=made.id, key_hashes=[key]).unassigned_count == 1
    assert client.guardrails.delete(id=made.id).DELETED is True
    assert client.guardrails.list().result.data == []


def test_a_budget_needs_both_limit_and_interval(team: Account) -> None:
    answer = manage(team, "POST", "/guardrails", {"name": "half", "limit_usd": 1})
    assert answer.status_code == 400 and answer.json()["error"]["metadata"]["param"] == "reset_interval"
    other = team.gateway.account(name="stranger")
    mine = manage(team, "POST", "/guardrails", {"name": "mine"}).json()["data"]
    assert manage(other, "GET", f"/guardrails/{mine['id']}").status_code == 404  # scoped to the account


# ---- presets ------------------------------------------------------------------------------------------
def test_a_preset_request_equals_the_explicit_one(team: Account, engine: GatedUpstream) -> None:
    made = manage(team, "POST", "/presets", {
        "slug": "brief", "name": "Brief", "system_prompt": "Be brief.",
        "config": {"model": "team/other", "temperature": 0.3, "max_tokens": 7, "provider": {"order": ["eng-b"]}}})
    assert made.status_code == 201, made.text
    hello = [{"role": "user", "content": "hello team"}]
    explicit = {"model": "team/other", "temperature": 0.3, "max_tokens": 7, "provider": {"order": ["eng-b"]},
                "messages": [{"role": "system", "content": "Be brief."}, *hello]}
    answers = []
    for body in (explicit, {"model": "@preset/brief", "messages": hello}, {"preset": "brief", "messages": hello}):
        start = len(engine.bodies)
        answer = team.chat(body)
        assert answer.status_code == 200, answer.text
        answers.append((engine.bodies[start], answer.json()["usage"]["cost"]))
    assert answers[1] == answers[0] and answers[2] == answers[0]  # same upstream body, same charge
    costs = team.gateway.rows("SELECT total_cost_nano FROM generations WHERE account_id = ?", (team.id,))
    assert len({c for (c,) in costs}) == 1 and len(costs) == 3

    start = len(engine.bodies)
    team.chat({"model": "@preset/brief", "messages": hello, "temperature": 0.9})  # the request's own field wins
    assert engine.bodies[start]["temperature"] == 0.9 and engine.bodies[start]["max_tokens"] == 7


def test_preset_versions_and_pinning(team: Account, engine: GatedUpstream) -> None:
    manage(team, "POST", "/presets", {"slug": "warm", "config": {"model": "team/other", "temperature": 0.3}})
    patched = manage(team, "PATCH", "/presets/warm", {"config": {"model": "team/other", "temperature": 0.5}})
    assert patched.json()["data"]["designated_version"]["version"] == 2
    hello = [{"role": "user", "content": "hello team"}]
    for model, temperature in (("@preset/warm", 0.5), ("@preset/warm@1", 0.3), ("@preset/warm@2", 0.5)):
        start = len(engine.bodies)
        assert team.chat({"model": model, "messages": hello}).status_code == 200
        assert engine.bodies[start]["temperature"] == temperature
    missing = team.chat({"model": "@preset/warm@9", "messages": hello})
    assert missing.status_code == 404 and "no version 9" in missing.json()["error"]["message"]
    unknown = team.chat({"model": "@preset/nope", "messages": hello})
    assert unknown.status_code == 404
    bad = manage(team, "POST", "/presets", {"slug": "bad", "config": {"temperature": 7}})
    assert bad.status_code == 400 and bad.json()["error"]["metadata"]["param"] == "temperature"


def test_presets_through_the_openrouter_sdk(team: Account, engine: GatedUpstream) -> None:
    client = sdk(team, team.management_key)
    saved = client.presets.create_presets_chat_completions(
        slug="from-body", model="team/other", temperature=0.2,
        messages=[{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "ignored"}]).data
    assert saved.slug == "from-body" and saved.designated_version is not None
    assert saved.designated_version.config == {"model": "team/other", "temperature": 0.2}
    assert saved.designated_version.system_prompt == "Answer in French."
    assert [p.slug for p in client.presets.list().result.data] == ["from-body"]
    assert client.presets.get(slug="from-body").data.designated_version.version == 1
    client.presets.create_presets_chat_completions(slug="from-body", model="team/other", temperature=0.4,
                                                   messages=[{"role": "user", "content": "x"}])
    versions = client.presets.list_versions(slug="from-body").result.data
    assert [v.version for v in versions if v is not None] == [2, 1]
    assert client.presets.get_version(slug="from-body", version="1").data.config["temperature"] == 0.2
    start = len(engine.bodies)
    answer = sdk(team, team.api_key).chat.send(model="@preset/from-body@1",
                                               messages=[{"role": "user", "content": "bonjour"}])
    assert answer.choices[0].message.content == "from b"
    assert engine.bodies[start]["messages"][0] == {"role": "system", "content": "Answer in French."}


# ---- engine concurrency -----------------------------------------------------------------------------------
def test_max_concurrency_waits_in_a_bounded_queue_then_429(team: Account, engine: GatedUpstream) -> None:
    engine.close_gate()
    with ThreadPoolExecutor(3) as pool:
        try:
            first = pool.submit(team.chat, ask("team/capped"))
            engine.wait_in_flight("gated-c", 1)
            queued: list[Future[httpx.Response]] = [pool.submit(team.chat, ask("team/capped")) for _ in range(2)]
            finished = _first_done(queued)  # one waits in the queue of 1, the other is refused at once
            assert finished, f"no request was refused: {engine.in_flight}"
            refused = finished[0].result()
        finally:
            engine.open_gate()
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "max_concurrency" in refused.json()["error"]["message"]
        done = [first.result(WAIT), *(f.result(WAIT) for f in queued if f is not finished[0])]
    assert [d.status_code for d in done] == [200, 200]
    assert engine.most["gated-c"] == 1  # the engine never saw two at once


def test_max_concurrency_falls_back_to_the_next_endpoint(team: Account, engine: GatedUpstream) -> None:
    engine.close_gate()
    spill = ask("team/spill", provider={"order": ["eng-c", "eng-d"]})
    with ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(team.chat, spill)
            engine.wait_in_flight("gated-c", 1)
            second = pool.submit(team.chat, spill)
            engine.wait_in_flight("gated-d", 1)  # eng-c is full: the second request went to eng-d at once
        finally:
            engine.open_gate()
        providers = [first.result(WAIT).json()["provider"], second.result(WAIT).json()["provider"]]
    assert providers == ["eng-c", "eng-d"]
    assert engine.most["gated-c"] == 1


@pytest.mark.e2e
def test_key_max_concurrency_queues_then_refuses_that_key_only(engine: GatedUpstream, tmp_path: Path) -> None:
    (tmp_path / "routeway.toml").write_text(config(engine.base_url) + "\n[limits]\nkey_max_concurrency = 1\n")
    gateway = start_gateway(tmp_path / "routeway.toml", tmp_path / "data")
    try:
        team = gateway.account(credits=10)
        other_key = manage(team, "POST", "/keys", {"name": "other"}).json()["key"]
        engine.close_gate()
        with ThreadPoolExecutor(3) as pool:
            try:
                first = pool.submit(team.chat, ask("team/gated"))
                engine.wait_in_flight("gated-d", 1)
                queued = [pool.submit(team.chat, ask("team/gated")) for _ in range(2)]
                finished = _first_done(queued)
                assert finished, f"no request was refused: {engine.in_flight}"
                refused = finished[0].result()
                assert team.chat(ask("team/other"), key=other_key).status_code == 200  # another key is not held up
            finally:
                engine.open_gate()
            assert refused.status_code == 429 and refused.json()["error"]["metadata"]["limited_by"] == \
                "key_max_concurrency"
            rest = [first.result(WAIT), *(f.result(WAIT) for f in queued if f is not finished[0])]
        assert [r.status_code for r in rest] == [200, 200]
    finally:
        stop_gateway(gateway)


def _first_done(futures: list[Future[httpx.Response]]) -> list[Future[httpx.Response]]:
    done, _ = wait(futures, timeout=WAIT, return_when=FIRST_COMPLETED)
    return list(done)


def test_config_refuses_a_bad_max_concurrency(tmp_path: Path) -> None:
    from routeway.config import ConfigError, load_settings

    path = tmp_path / "bad.toml"
    path.write_text(config("http://127.0.0.1:9/v1").replace("max_concurrency = 1", "max_concurrency = 0"))
    with pytest.raises(ConfigError, match="max_concurrency"):
        load_settings(path, env={})


# ---- dashboard ----------------------------------------------------------------------------------------
def test_the_dashboard_lists_and_saves_presets_and_guardrails(team: Account, engine: GatedUpstream) -> None:
    with signed_in(team.gateway.url, team.management_key) as page:
        form = page.get("/presets")
        assert form.status_code == 200 and "No presets yet." in form.text
        token = _CSRF.search(form.text)
        assert token is not None
        saved = page.post("/presets", data={"csrf": token.group(1), "slug": "web", "name": "From the web",
                                            "system_prompt": "Be kind.", "config": '{"model": "team/other"}'})
        assert saved.status_code == 303
        listed = page.get("/presets").text
        assert "@preset/web" in listed and "From the web" in listed and "Be kind." in listed
        refused = page.post("/presets", data={"csrf": token.group(1), "slug": "web", "config": "{not json"})
        assert refused.status_code == 303 and "version 2" not in page.get("/presets").text

        made = page.post("/guardrails", data={"csrf": token.group(1), "name": "web budget", "limit_usd": "2",
                                              "reset_interval": "weekly", "ignored_providers": "eng-a, eng-c",
                                              "account_default": "on"})
        assert made.status_code == 303
        shown = page.get("/guardrails").text
        assert "web budget" in shown and "eng-a, eng-c" in shown and "account default" in shown
    assert team.chat({"model": "@preset/web", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    assert team.chat(ask("team/solo")).json()["error"]["metadata"]["guardrail"] == "web budget"


def test_guardrails_hold_on_the_messages_api_too(team: Account, engine: GatedUpstream) -> None:
    made = manage(team, "POST", "/guardrails", {"name": "no solo here", "ignored_models": ["team/solo"]}).json()["data"]
    manage(team, "POST", f"/guardrails/{made['id']}/assignments/keys", {"key_hashes": [key_hash(team, team.api_key)]})
    seen = len(engine.bodies)
    refused = httpx.post(team.gateway.api + "/messages", timeout=WAIT,
                         headers={"x-api-key": team.api_key, "anthropic-version": "2023-06-01"},
                         json={"model": "team/solo", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error" and "no solo here" in refused.json()["error"]["message"]
    assert len(engine.bodies) == seen


def test_the_guardrails_page_charts_spend_against_each_budget_and_the_operator_sees_every_account(
        teams_gateway: Gateway, engine: GatedUpstream) -> None:
    import json
    import re

    from tests.conftest import ADMIN_KEY

    first, second = teams_gateway.account(credits=10, name="charted"), teams_gateway.account(credits=10, name="other")
    made = manage(first, "POST", "/guardrails", {"name": "charted budget", "limit_usd": 1, "reset_interval": "daily"})
    guardrail = made.json()["data"]["id"]
    manage(first, "POST", f"/guardrails/{guardrail}/assignments/keys", {"key_hashes": [key_hash(first, first.api_key)]})
    manage(second, "POST", "/guardrails", {"name": "others rules", "allowed_models": ["team/other"]})
    for _ in range(3):
        assert first.chat(ask("team/other")).status_code == 200
    spent = -first.ledger_sum() + first.gateway.rows(
        "SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = ? AND kind != 'charge'", (first.id,))[0][0]
    assert spent > 0

    with signed_in(first.gateway.url, first.management_key) as page:
        shown = page.get("/guardrails").text
    charts = json.loads(re.search(r'id="chart-data">(.*?)</script>', shown, re.S).group(1))  # type: ignore[union-attr]
    chart = charts[guardrail]
    budget_line, key_line = chart["series"]
    assert budget_line["values"][-1] == 1 and key_line["label"] == "api"
    assert key_line["values"][-1] == pytest.approx(spent / 1e9)  # today's spend in the window, from the ledger
    assert f'data-chart="{guardrail}"' in shown and "others rules" not in shown

    with signed_in(first.gateway.url, ADMIN_KEY) as operator:
        every = operator.get("/guardrails").text
    assert "charted budget" in every and "others rules" in every  # across accounts
    assert "charted" in every and 'id="create-guardrail"' not in every
