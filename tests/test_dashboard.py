"""The web dashboard in a real browser: Playwright driving Debian's Chromium against routeway started as a
server, with traffic produced through the API first. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from routeway.ledger.accounts import hash_key

from tests.conftest import ADMIN_KEY, Account, Gateway, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make install-test)")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
HERMES = "nousresearch/hermes-4-70b"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("dashboard")
    config = write_config(root / "routeway.toml", upstream.base_url, "\n[routing]\nhealth_flush_seconds = 1\n")
    gateway = start_gateway(config, root / "data")
    yield gateway
    stop_gateway(gateway)


@pytest.fixture(scope="module")
def traffic(site: Gateway) -> dict[str, Any]:
    """Two accounts; the first sends Hermes requests from two apps, the second one request of its own."""
    first, second = site.account(name="first"), site.account(name="second")
    app_a = {"HTTP-Referer": "https://app-a.example", "X-Title": "App A"}
    app_b = {"HTTP-Referer": "https://app-b.example", "X-Title": "App B"}
    for i, headers in enumerate([app_a, app_a, app_a, app_b]):
        reply = first.chat({"model": HERMES, "messages": [{"role": "user", "content": f"hello dashboard {i}"}],
                            "stream": i % 2 == 1, "max_tokens": 64}, headers=headers)
        assert reply.status_code == 200, reply.text
    assert second.chat({"model": "test/echo", "messages": [{"role": "user", "content": "second account"}]}).status_code == 200
    time.sleep(1.5)  # one health flush (health_flush_seconds = 1) puts the minutes in endpoint_minutes
    assert site.rows("SELECT COUNT(*) FROM endpoint_minutes")[0][0] >= 1
    return {"first": first, "second": second,
            "first_ids": [g[0] for g in first.generations()], "second_ids": [g[0] for g in second.generations()]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        yield chromium
        chromium.close()


def new_page(browser: Any, site: Gateway, viewport: dict[str, int] = DESKTOP) -> Any:
    context = browser.new_context(viewport=viewport, base_url=site.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


def sign_in(page: Any, key: str, next_path: str = "/activity") -> None:
    page.goto(f"/signin?next={next_path}")
    page.fill("#key", key)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def shot(page: Any, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")  # sticky bars sit where the viewport was in a full-page shot
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_home_health_and_public_pages(site: Gateway, traffic: dict[str, Any], browser: Any) -> None:
    assert httpx.get(site.url + "/health").json()["status"] == "ok"
    home = httpx.get(site.url + "/")
    assert home.status_code == 200 and "text/html" in home.headers["content-type"]
    assert "content-security-policy" in home.headers
    for private in ("/activity", "/keys", "/playground", "/activity/generations"):
        moved = httpx.get(site.url + private)
        assert moved.status_code == 303 and moved.headers["location"].startswith("/signin?next=")
    page = new_page(browser, site)
    page.goto("/models")
    page.fill("#f-q", "hermes 4")
    visible = page.locator("#model-table tr[data-model]:visible")
    assert visible.count() == 2 and "hermes" in visible.first.inner_text().lower()
    page.fill("#f-q", "")
    page.check("input[name=param][value=reasoning]")
    page.select_option("#f-context", "128000")
    rows = page.locator("#model-table tr[data-model]:visible")
    assert 0 < rows.count() < page.locator("#model-table tr[data-model]").count()
    shot(page, "models-desktop")
    page.goto("/rankings?period=day")
    assert "Nous: Hermes 4 70B" in page.inner_text("#model-ranking")
    assert "App A" in page.inner_text("#app-ranking") and "App B" in page.inner_text("#app-ranking")
    page.wait_for_selector("[data-chart=leaders][data-state=drawn]")
    shot(page, "rankings-desktop")
    assert page.js_errors == []


def test_model_page_shows_providers_and_charts(site: Gateway, traffic: dict[str, Any], browser: Any) -> None:
    for viewport, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page = new_page(browser, site, viewport)
        sign_in(page, traffic["first"].management_key, "/models/" + HERMES)
        assert page.inner_text("h1") == "Nous: Hermes 4 70B"
        assert page.inner_text("#model-id") == HERMES
        providers = page.inner_text("#providers-table")
        assert "Mock Engine" in providers and "fp8" in providers and "closed" in providers
        assert re.search(r"\d+ ms", providers) and "tok/s" in providers and "100%" in providers
        assert page.inner_text("#weekly-tokens") not in ("0", "—")
        for chart in ("ttft", "tps", "tokens", "requests", "uptime"):
            page.wait_for_selector(f"[data-chart={chart}][data-state=drawn] canvas")
        apps = page.inner_text("#apps-table")
        assert apps.index("App A") < apps.index("App B")  # ranked by tokens: three requests against one
        code = page.inner_text("#code-curl")
        assert site.url + "/api/v1/chat/completions" in code and HERMES in code
        page.click("button[data-tab=openrouter]")
        assert "server_url=" in page.inner_text("#code-openrouter")
        shot(page, f"model-{name}")
        assert page.js_errors == []


def test_activity_and_generation_detail(site: Gateway, traffic: dict[str, Any], browser: Any) -> None:
    page = new_page(browser, site)
    sign_in(page, traffic["first"].management_key)
    assert "Nous: Hermes 4 70B" in page.inner_text("#by-model")
    assert "api" in page.inner_text("#by-key")
    assert page.inner_text("#total-requests") == str(len(traffic["first"].generations()))
    page.wait_for_selector("[data-chart=spend][data-state=drawn] canvas")
    shot(page, "activity-desktop")
    page.goto("/activity/generations")
    rows = page.locator("#generations-table tbody tr")
    assert rows.count() == len(traffic["first"].generations())
    newest = rows.first.get_attribute("data-generation")
    assert newest in traffic["first_ids"]
    rows.first.locator("a").click()
    page.wait_for_url(f"**/activity/generations/{newest}")
    attempts = page.inner_text("#attempts")
    assert "mock" in attempts and "status 200" in attempts
    assert "→" in page.inner_text("#gen-tokens") and page.inner_text("#gen-cost").startswith("$")
    shot(page, "generation-desktop")


def test_keys_create_limit_disable_delete(site: Gateway, traffic: dict[str, Any], browser: Any) -> None:
    page = new_page(browser, site, PHONE)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, traffic["first"].management_key, "/keys")
    page.fill("#k-name", "browser-made")
    page.fill("#k-limit", "5")
    page.select_option("#k-reset", "monthly")
    page.click("#create-key button[type=submit]")
    secret = page.inner_text("#secret-value")
    assert secret.startswith("sk-rw-v1-")
    shot(page, "keys-phone")
    assert httpx.get(site.api + "/key", headers={"authorization": f"Bearer {secret}"}).json()["data"]["limit"] == 5
    page.reload()
    assert page.locator("#new-secret").count() == 0  # shown once
    card = page.locator("article.key[data-name=browser-made]")
    card.locator("input[name=limit]").fill("2.5")
    card.locator("select[name=limit_reset]").select_option("daily")
    with page.expect_navigation():
        card.locator("text=Save limit").click()
    data = httpx.get(site.api + "/key", headers={"authorization": f"Bearer {secret}"}).json()["data"]
    assert data["limit"] == 2.5 and data["limit_reset"] == "daily"
    with page.expect_navigation():
        page.locator("article.key[data-name=browser-made] button", has_text="Disable").click()
    assert page.locator("article.key[data-name=browser-made] .key-status").inner_text() == "disabled"
    assert httpx.get(site.api + "/key", headers={"authorization": f"Bearer {secret}"}).status_code == 401
    with page.expect_navigation():
        page.locator("article.key[data-name=browser-made] button", has_text="Enable").click()
    assert httpx.get(site.api + "/key", headers={"authorization": f"Bearer {secret}"}).status_code == 200
    with page.expect_navigation():
        page.locator("article.key[data-name=browser-made] button", has_text="Delete").click()
    assert "deleted" in page.inner_text(".flash")
    assert page.locator("article.key[data-name=browser-made]").count() == 0
    assert httpx.get(site.api + "/key", headers={"authorization": f"Bearer {secret}"}).status_code == 401
    page.fill("#k-name", "bad-limit")
    page.fill("#k-limit", "-1")
    page.evaluate("document.getElementById('k-limit').removeAttribute('min')")
    with page.expect_navigation():
        page.click("#create-key button[type=submit]")
    assert ">= 0" in page.inner_text(".flash.error")


def test_playground_streams_reasoning_apart(site: Gateway, traffic: dict[str, Any], browser: Any) -> None:
    first: Account = traffic["first"]
    for viewport, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page = new_page(browser, site, viewport)
        sign_in(page, first.management_key, "/playground?model=test/reasoning")
        assert page.locator("#pg-model").input_value() == "test/reasoning"
        page.select_option("#pg-effort", "high")
        page.fill("#pg-message", "why is the sky blue")
        page.click("#pg-send")
        answer = page.locator(".msg.assistant").last
        page.wait_for_selector(".msg.assistant[data-state=done]")
        assert answer.locator(".msg-text").inner_text() == "echo: why is the sky blue"
        reasoning = answer.locator("details.reasoning")
        assert reasoning.is_visible() and "think" in reasoning.inner_text()
        assert "think" not in answer.locator(".msg-text").inner_text()
        usage = answer.locator(".msg-usage").inner_text()
        assert "3 reasoning" in usage and "cost $" in usage
        if name == "desktop":  # a tool call, parsed by routeway from raw Hermes text, shown as one
            page.select_option("#pg-model", "test/say-hermes")
            page.check("#pg-tools")
            page.uncheck("#pg-reasoning")
            page.fill("#pg-message", '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>')
            page.click("#pg-send")
            page.locator(".msg.assistant[data-state=done]").nth(1).wait_for()  # (no wait_for_function: the CSP forbids eval)
            call = page.locator(".msg.assistant").last.locator(".tool-call")
            assert "get_weather" in call.inner_text() and "Paris" in call.inner_text()
        shot(page, f"playground-{name}")
        assert page.js_errors == []
        page.click("form[action='/signout'] button")
        page.wait_for_url(f"{site.url}/")
    keys = site.admin("GET", f"/admin/accounts/{first.id}/keys").json()["data"]
    assert not any(k["name"] == "playground (dashboard)" for k in keys)  # deleted at sign-out


def test_csrf_and_account_isolation(site: Gateway, traffic: dict[str, Any], browser: Any) -> None:
    page = new_page(browser, site)
    sign_in(page, traffic["first"].management_key, "/keys")
    for form in ({"name": "no-token"}, {"name": "bad-token", "csrf": "forged"}):
        assert page.request.post(site.url + "/keys", form=form, max_redirects=0).status == 403
    assert page.request.post(site.url + "/signout", form={}, max_redirects=0).status == 403
    assert page.request.post(site.url + "/playground/key", data="{}", max_redirects=0).status == 403
    token = page.locator("body").get_attribute("data-csrf") or ""
    assert page.request.post(site.url + "/keys", form={"name": "cross-site", "csrf": token}, max_redirects=0,
                             headers={"origin": "https://evil.example"}).status == 403
    assert page.request.post(site.url + "/keys", form={"name": "same-site", "csrf": token}, max_redirects=0,
                             headers={"origin": site.url}).status == 303
    names = {k["name"] for k in site.admin("GET", f"/admin/accounts/{traffic['first'].id}/keys").json()["data"]}
    assert "same-site" in names and not names & {"no-token", "bad-token", "cross-site"}
    other = new_page(browser, site)
    sign_in(other, traffic["second"].management_key, "/activity/generations")
    shown = other.locator("#generations-table tbody tr")
    ids = {shown.nth(i).get_attribute("data-generation") for i in range(shown.count())}
    assert ids == set(traffic["second_ids"]) and not ids & set(traffic["first_ids"])
    response = other.goto(f"/activity/generations/{traffic['first_ids'][0]}")
    assert response is not None and response.status == 404
    first_key = traffic["first"].api_key
    assert other.request.post(site.url + f"/keys/{hash_key(first_key)}/delete", max_redirects=0,
                              form={"csrf": other.locator("body").get_attribute("data-csrf") or ""}).status == 404
    assert "Nous: Hermes 4 70B" not in other.goto("/activity").text()


def test_signin_refusals_and_operator(site: Gateway, traffic: dict[str, Any], browser: Any) -> None:
    page = new_page(browser, site)
    page.goto("/signin")
    page.fill("#key", traffic["first"].api_key)
    with page.expect_navigation():
        page.click("form.stack button[type=submit]")
    assert "API key" in page.inner_text(".flash.error")
    page.fill("#key", "sk-rw-v1-nonsense")
    with page.expect_navigation():
        page.click("form.stack button[type=submit]")
    assert "not known" in page.inner_text(".flash.error")
    sign_in(page, ADMIN_KEY)
    every = site.rows("SELECT COUNT(*) FROM generations")[0][0]
    assert page.inner_text("#total-requests") == str(every)  # the operator sees every account
    with page.expect_navigation():
        page.select_option("#account-select", label="second")
    assert page.inner_text("#total-requests") == str(len(traffic["second_ids"]))
    assert page.locator(".flash.error").count() == 0


def test_a_guardrail_budget_is_drawn_as_a_chart(site: Gateway, traffic: dict[str, Any], browser: Any) -> None:
    first = traffic["first"]
    auth = {"authorization": f"Bearer {first.management_key}"}
    made = httpx.post(site.api + "/guardrails", headers=auth, timeout=10, json={
        "name": "weekly five", "limit_usd": 5, "reset_interval": "weekly", "account_default": True}).json()["data"]
    page = new_page(browser, site)
    sign_in(page, first.management_key, "/guardrails")
    page.wait_for_selector(f"[data-chart='{made['id']}'][data-state=drawn]")
    legend = page.inner_text(f"[data-chart='{made['id']}']")
    assert "Budget" in legend and "api" in legend  # the budget's line and the key's spend line
    assert page.js_errors == []
    shot(page, "guardrails-budget")
