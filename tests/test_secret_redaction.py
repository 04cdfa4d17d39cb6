"""Provider keys never leave routeway (issue 11 item 3). Upstreams that repeat the request's credentials in
their errors — a 500 body, url-encoded or JSON-escaped, a 200 without choices, a broken stream event, an
Anthropic error event mid-stream — are called streaming and not, alone and behind fallbacks; then no
response body or header, generation record (API, SQLite, dashboard) or server log line holds any secret."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import ADMIN_KEY, Account, Gateway, start_gateway, stop_gateway, write_config
from tests.support.anthropic_upstream import MockAnthropic
from tests.support.dashboard_client import signed_in
from tests.support.upstream import MockUpstream

KEY_A = "sk-leaky-" + secrets.token_hex(16)
KEY_B = "Zq9+/leaky-b/" + secrets.token_hex(12) + "=="  # needs url-encoding and may be JSON-escaped
HEADER_SECRET = "hdr-" + secrets.token_hex(16)  # sent as a configured `Authorization` header, not a key
ANTHROPIC_KEY = "ant-leaky-" + secrets.token_hex(16)
ORDER = ["leaky-a", "leaky-b", "leaky-header", "leaky-anthropic", "clean"]  # fallbacks in a known order
SECRETS = (KEY_A, KEY_B, HEADER_SECRET, ANTHROPIC_KEY, ADMIN_KEY)

# model id → the endpoints serving it, as (provider, upstream model), tried in this order
MODELS = {
    "leak/plain": [("leaky-a", "echo-auth#plain")],
    "leak/encoded": [("leaky-b", "echo-auth-encoded")],
    "leak/no-choices": [("leaky-a", "echo-auth-json")],
    "leak/bad-sse": [("leaky-b", "echo-auth-sse")],
    "leak/header": [("leaky-header", "echo-auth#header")],
    "leak/all-fail": [("leaky-a", "echo-auth#all-a"), ("leaky-b", "echo-auth-encoded#all-b"),
                      ("leaky-header", "echo-auth#all-h")],
    "leak/then-ok": [("leaky-a", "echo-auth#ok-a"), ("leaky-b", "echo-auth-encoded#ok-b"),
                     ("leaky-header", "echo-auth#ok-h"), ("clean", "echo")],
    "leak/claude": [("leaky-anthropic", "claude-echo-auth")],
}


def _config(upstream: MockUpstream, anthropic: MockAnthropic) -> str:
    lines = []
    for name, url, kind, extra in (
            ("leaky-a", upstream.base_url, "openai", 'api_key_env = "LEAKY_KEY_A"'),
            ("leaky-b", upstream.base_url, "openai", 'api_key_env = "LEAKY_KEY_B"'),
            ("leaky-header", upstream.base_url, "openai", f'headers = {{ Authorization = "Bearer {HEADER_SECRET}" }}'),
            ("clean", upstream.base_url, "openai", ""),
            ("leaky-anthropic", anthropic.base_url, "anthropic", 'api_key_env = "LEAKY_ANTHROPIC"')):
        lines += ["[[providers]]", f'name = "{name}"', f'kind = "{kind}"', f'base_url = "{url}"', extra, ""]
    for model, endpoints in MODELS.items():
        lines += ["[[models]]", f'id = "{model}"', "context_length = 8192", 'prompt_price = "1"', 'completion_price = "2"', ""]
        for provider, upstream_model in endpoints:
            lines += ["[[endpoints]]", f'model = "{model}"', f'provider = "{provider}"',
                      f'upstream_model = "{upstream_model}"', ""]
    # every request is tried on every endpoint it names: no breaker opens (and skips one) across the cases
    lines += ["[routing]", "breaker_threshold = 1000", ""]
    return "\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def leaky(upstream: MockUpstream, anthropic: MockAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("secrets")
    config = write_config(root / "routeway.toml", upstream.base_url, _config(upstream, anthropic))
    gateway = start_gateway(config, root / "data", {"LEAKY_KEY_A": KEY_A, "LEAKY_KEY_B": KEY_B,
                                                     "LEAKY_ANTHROPIC": ANTHROPIC_KEY})
    yield gateway
    stop_gateway(gateway)


def leaked(text: str) -> list[str]:
    """Every secret found in ``text``, whole or in part (any 12 characters of it), as is or url-encoded."""
    found = []
    for secret in SECRETS:
        for form in {secret, quote(secret, safe=""), secret.replace("/", "\\/")}:
            if any(form[i:i + 12].lower() in text.lower() for i in range(len(form) - 11)):
                found.append(secret)
                break
    return found


def exchange(account: Account, model: str, stream: bool, **extra: Any) -> str:
    """One chat request; the whole response (status, headers, body) as text."""
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16, "stream": stream,
            "provider": {"order": ORDER}, **extra}
    reply = httpx.post(account.gateway.api + "/chat/completions", json=body, timeout=30,
                       headers={"authorization": f"Bearer {account.api_key}", "x-openrouter-metadata": "enabled"})
    assert reply.status_code < 500 or reply.json()["error"]["code"] in (502, 503), reply.text
    headers = "\n".join(f"{k}: {v}" for k, v in reply.headers.items())
    return f"{reply.status_code}\n{headers}\n\n{reply.text}"


CASES = [(model, stream, {}) for model in MODELS for stream in (False, True)] + [
    (model, stream, {"models": [model, "leak/then-ok"]}) for model in ("leak/plain", "leak/claude") for stream in (False, True)]


@pytest.fixture(scope="module")
def traffic(leaky: Gateway, upstream: MockUpstream, anthropic: MockAnthropic) -> dict[str, Any]:
    account = leaky.account(name="leaky")
    seen_before = len(upstream.request_headers), len(anthropic.headers)
    answers = {(model, stream, bool(extra)): exchange(account, model, stream, **extra) for model, stream, extra in CASES}
    # the upstreams really were sent the secrets (and echoed them): otherwise this test proves nothing
    sent = " ".join(str(h) for h in upstream.request_headers[seen_before[0]:] + anthropic.headers[seen_before[1]:])
    assert {KEY_A, KEY_B, HEADER_SECRET, ANTHROPIC_KEY} <= set(leaked(sent))
    return {"account": account, "answers": answers}


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[0]}-{'stream' if case[1] else 'json'}"
                                                       f"{'-models' if case[2] else ''}")
def test_no_secret_in_the_response(traffic: dict[str, Any], case: tuple[str, bool, dict[str, Any]]) -> None:
    model, stream, extra = case
    text = traffic["answers"][(model, stream, bool(extra))]
    assert leaked(text) == [], text
    if (model, stream) not in NOT_ECHOED:
        assert "[REDACTED]" in text, text  # the echo reached routeway, and was caught


NOT_ECHOED = {("leak/no-choices", True), ("leak/bad-sse", False)}  # refused on content type before any echo


def test_errors_still_say_what_happened(traffic: dict[str, Any]) -> None:
    answers: dict[tuple[str, bool, bool], str] = traffic["answers"]
    plain = answers[("leak/plain", False, False)]
    assert plain.startswith("502") and "upstream proxy rejected credentials Bearer [REDACTED]" in plain
    claude = answers[("leak/claude", True, False)]
    assert "proxy saw x-api-key [REDACTED]" in claude and '"finish_reason":"error"' in claude
    rescued = answers[("leak/then-ok", False, False)]
    assert rescued.startswith("200") and "echo: hello" in rescued and rescued.count("[REDACTED]") == 3


def test_no_secret_in_generation_records(traffic: dict[str, Any], leaky: Gateway) -> None:
    account: Account = traffic["account"]
    ids = [row[0] for row in account.generations()]
    assert len(ids) == len(CASES)
    for generation_id in ids:
        record = httpx.get(leaky.api + "/generation", params={"id": generation_id}, timeout=30,
                           headers={"authorization": f"Bearer {account.api_key}"})
        assert record.status_code == 200 and leaked(record.text) == [], record.text
    errors = " ".join(str(row) for row in leaky.rows("SELECT error, attempts FROM generations"))
    assert "[REDACTED]" in errors
    for (table,) in leaky.rows("SELECT name FROM sqlite_master WHERE type = 'table'"):
        assert leaked(" ".join(map(str, leaky.rows(f"SELECT * FROM {table}")))) == [], table


def test_no_secret_on_dashboard_pages(traffic: dict[str, Any], leaky: Gateway) -> None:
    account: Account = traffic["account"]
    with signed_in(leaky.url, account.management_key) as client:
        pages = ["/activity", "/activity/generations"] + [f"/activity/generations/{row[0]}" for row in account.generations()]
        for path in pages:
            page = client.get(path)
            assert page.status_code == 200, (path, page.status_code)
            assert leaked(page.text) == [], path
        assert "[REDACTED]" in client.get(f"/activity/generations/{account.generations()[0][0]}").text


def test_no_secret_in_the_log(traffic: dict[str, Any], leaky: Gateway) -> None:
    port = leaky.url.rsplit(":", 1)[1]
    log = Path(leaky.data_dir).parent / f"routeway-{port}.log"
    assert log.exists()
    assert leaked(log.read_text(errors="replace")) == []
