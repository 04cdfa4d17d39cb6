"""Shared fixtures: a mock upstream on loopback and routeway itself started as a real server process.

Also the suite's hygiene: tests that start a server process are marked ``e2e`` (``pytest -m "not e2e"``
runs the unit tests alone), provider keys from the developer's shell never reach a process the tests
start, and test gateways draw their load-balancing randomness from a fixed seed.
"""

from __future__ import annotations

import inspect
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from routeway.config import ENV_PROVIDERS
from routeway.routing.plan import SEED_VARIABLE

from tests.support.anthropic_upstream import MockAnthropic
from tests.support.postgres import ThrowawayDatabase
from tests.support.upstream import MockUpstream

BEHAVIOURS = ["echo", "no-usage", "reasoning", "slow-stream", "fail-500", "rate-limited", "bad-request",
              "not-json", "midstream-error", "hang", "slow", "late-stream", "huge-usage", "negative-usage",
              "garbled-usage", "echo-auth", "odd-choice"]
PARAMS = ["max_tokens", "temperature", "top_p", "top_k", "stop", "seed", "frequency_penalty", "presence_penalty",
          "repetition_penalty", "response_format", "tools", "tool_choice", "reasoning", "include_reasoning"]
ADMIN_KEY = "rw-admin-test-" + "0" * 16
# Every variable whose presence makes routeway add a real upstream (config.py's environment providers).
PROVIDER_KEY_VARIABLES = tuple(variable for variable, _ in ENV_PROVIDERS)
ROUTING_SEED = "routeway-tests"  # test gateways route the same way on every run
# Source text that means a test (or a fixture it uses) starts a server process.
SERVER_STARTERS = ("start_gateway(", "start_llama_server(", "llama_server(", "sync_playwright(", "subprocess.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: starts a server process (routeway, llama.cpp or a browser); "
                                       "deselect with -m 'not e2e' to run the unit tests alone")
    for variable in PROVIDER_KEY_VARIABLES:  # also covers `routeway serve` run directly and in-process config
        os.environ.pop(variable, None)


def _starts_a_server(function: Any) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return any(starter in source for starter in SERVER_STARTERS)


_running: list[pytest.Item] = []  # the test being set up or run, for start_gateway's marker check


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark e2e every test whose own code or any fixture it uses (transitively) starts a server process."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        fixtures = [d.func for defs in (info.name2fixturedefs.values() if info else []) for d in defs]
        if any(_starts_a_server(f) for f in [getattr(item, "function", None), *fixtures]):
            item.add_marker(pytest.mark.e2e)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, upstream_url: str, extra: str = "") -> Path:
    lines = [
        "[server]", "keepalive_seconds = 0.5", "max_body_bytes = 65536", "",
        "[[providers]]", 'name = "mock"', 'display_name = "Mock Engine"', 'kind = "openai"',
        f'base_url = "{upstream_url}"', "[providers.timeouts]", "first_byte = 5", "idle = 3", "",
        "[[providers]]", 'name = "mock-b"', 'display_name = "Mock Engine B"', 'kind = "openai"',
        f'base_url = "{upstream_url}"', "",
        "[[providers]]", 'name = "mock-t"', 'display_name = "Mock Engine T"', 'kind = "openai"',
        f'base_url = "{upstream_url}"', "[providers.timeouts]", "first_byte = 1", "",
    ]
    for behaviour in BEHAVIOURS:
        lines += ["[[models]]", f'id = "test/{behaviour}"', f'name = "Test {behaviour}"', "context_length = 8192",
                  'prompt_price = "1.00"', 'completion_price = "2.00"', f"supported_parameters = {PARAMS!r}".replace("'", '"'), "",
                  "[[endpoints]]", f'model = "test/{behaviour}"', f'provider = "{"mock-t" if behaviour == "hang" else "mock"}"', f'upstream_model = "{behaviour}"',
                  "max_output = 1000", ""]
    lines += ["[[models]]", 'id = "test/fallback"', 'name = "Test fallback"', "context_length = 8192",
              'prompt_price = "1.00"', 'completion_price = "2.00"', "",
              "[[endpoints]]", 'model = "test/fallback"', 'provider = "mock"', 'upstream_model = "fail-500#fallback"', "",
              "[[endpoints]]", 'model = "test/fallback"', 'provider = "mock-b"', 'upstream_model = "echo"', "",
              "[[models]]", 'id = "test/say"', 'name = "Test say"', "context_length = 8192",
              'prompt_price = "1.00"', 'completion_price = "2.00"',
              'supported_parameters = ["max_tokens", "response_format", "structured_outputs", "tools", "reasoning"]', "",
              "[[endpoints]]", 'model = "test/say"', 'provider = "mock"', 'upstream_model = "say"', "",
              "[[models]]", 'id = "test/say-hermes"', 'name = "Test say (raw Hermes)"', "context_length = 8192",
              'prompt_price = "1.00"', 'completion_price = "2.00"', 'supported_parameters = ["max_tokens", "reasoning"]', "",
              "[[endpoints]]", 'model = "test/say-hermes"', 'provider = "mock"', 'upstream_model = "say#hermes"',
              'dialect = "hermes"', "",
              "[[models]]", 'id = "test/say-llamacpp"', 'name = "Test say (llama.cpp)"', "context_length = 8192",
              'prompt_price = "1.00"', 'completion_price = "2.00"', 'supported_parameters = ["max_tokens", "response_format"]', "",
              "[[endpoints]]", 'model = "test/say-llamacpp"', 'provider = "mock"', 'upstream_model = "say#llamacpp"',
              'dialect = "llamacpp"', "",
              *[line for field in ("reasoning", "thinking") for line in (
                  "[[models]]", f'id = "test/reasoning-{field}"', "context_length = 8192",
                  'prompt_price = "1.00"', 'completion_price = "2.00"', "",
                  "[[endpoints]]", f'model = "test/reasoning-{field}"', 'provider = "mock"',
                  f'upstream_model = "reasoning#{field}"', "")],
              "[[endpoints]]", 'model = "nousresearch/hermes-4-70b"', 'provider = "mock"', 'upstream_model = "echo"',
              'quantization = "fp8"', "max_output = 4096", "",
              # the catalog's text completions and embedding models, as the OpenAPI document's examples use them
              "[[endpoints]]", 'model = "openai/gpt-3.5-turbo-instruct"', 'provider = "mock"', 'upstream_model = "echo"', "",
              "[[endpoints]]", 'model = "openai/text-embedding-3-small"', 'provider = "mock"', 'upstream_model = "embed"',
              ""]
    path.write_text("\n".join(lines) + extra)
    return path


@dataclass
class Gateway:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def admin(self, method: str, path: str, json: Any = None) -> httpx.Response:
        return httpx.request(method, self.api + path, json=json, timeout=30,
                             headers={"authorization": f"Bearer {ADMIN_KEY}"})

    def account(self, credits: float = 10.0, name: str = "tester") -> Account:
        created = self.admin("POST", "/admin/accounts", {"name": name, "credits": credits})
        assert created.status_code == 201, created.text
        account_id = created.json()["data"]["id"]
        management = self.admin("POST", f"/admin/accounts/{account_id}/keys", {"name": "mgmt"}).json()["key"]
        api_key = self.admin("POST", f"/admin/accounts/{account_id}/keys", {"name": "api", "management": False}).json()["key"]
        return Account(self, account_id, management, api_key)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.data_dir / "routeway.sqlite3")
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


@dataclass
class Account:
    gateway: Gateway
    id: str
    management_key: str
    api_key: str

    def state(self) -> dict[str, Any]:
        return self.gateway.admin("GET", f"/admin/accounts/{self.id}").json()["data"]

    def generations(self) -> list[tuple[Any, ...]]:
        return self.gateway.rows("SELECT id, status, total_cost_nano, cancelled FROM generations WHERE account_id = ?",
                                 (self.id,))

    def ledger_sum(self) -> int:
        return self.gateway.rows("SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = ?", (self.id,))[0][0]

    def chat(self, body: dict[str, Any], key: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(self.gateway.api + "/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {key or self.api_key}", **(headers or {})})

    def openai_client(self) -> openai.OpenAI:
        """The official SDK on this account's API key, without the SDK's retries (a test sees each answer)."""
        return openai.OpenAI(base_url=self.gateway.url + "/v1", api_key=self.api_key, max_retries=0)


def start_gateway(config: Path | None, data_dir: Path, env_extra: dict[str, str] | None = None,
                  args: tuple[str, ...] = ()) -> Gateway:
    if _running and _running[-1].get_closest_marker("e2e") is None:  # keeps `-m "not e2e"` honest
        raise RuntimeError(f"{_running[-1].nodeid} starts a gateway but is not marked e2e (see SERVER_STARTERS)")
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in PROVIDER_KEY_VARIABLES and key != "ROUTEWAY_CONFIG"}  # never a real provider
    env.update({"ROUTEWAY_ADMIN_KEY": ADMIN_KEY, SEED_VARIABLE: ROUTING_SEED, **(env_extra or {})})
    log = open(data_dir.parent / f"routeway-{port}.log", "wb")  # noqa: SIM115 - open as long as the server runs
    process = subprocess.Popen(
        [sys.executable, "-m", "routeway", "serve", *(["--config", str(config)] if config else []),
         "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning", *args],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"routeway exited: {(data_dir.parent / f'routeway-{port}.log').read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return Gateway(url, data_dir, process)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("routeway did not start within 30 s")


def stop_gateway(gateway: Gateway) -> None:
    gateway.process.terminate()
    try:
        gateway.process.wait(10)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait(10)  # the data folder's lock goes with the process: a restart may follow


@pytest.fixture(scope="session")
def upstream() -> Iterator[MockUpstream]:
    mock = MockUpstream().start()
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def anthropic() -> Iterator[MockAnthropic]:
    """An Anthropic Messages server on loopback, for the modules that configure an anthropic provider."""
    server = MockAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def database() -> Iterator[ThrowawayDatabase]:
    """A PostgreSQL database for the module (created on first use, so modules that skip never make one)."""
    throwaway = ThrowawayDatabase()
    yield throwaway
    throwaway.drop()


@pytest.fixture(scope="session")
def gateway(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("gateway")
    # Shared by every module: failures some tests provoke on purpose (test/midstream-error, fail-500) must not
    # open a breaker that a later module's test then meets. Breakers are tested on gateways of their own.
    gw = start_gateway(write_config(root / "routeway.toml", upstream.base_url,
                                    "\n[routing]\nbreaker_threshold = 100000\n"), root / "data")
    yield gw
    stop_gateway(gw)


@pytest.fixture()
def account(gateway: Gateway) -> Account:
    return gateway.account()


@pytest.fixture()
def fresh_gateway(upstream: MockUpstream, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway of its own, for tests whose endpoint health must start clean."""
    gw = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url), tmp_path / "data")
    yield gw
    stop_gateway(gw)
