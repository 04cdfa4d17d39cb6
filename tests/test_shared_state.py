"""State shared through Redis (``[shared] redis``): two routeway processes with their own data folders on
one Redis act as one for rate limits, concurrent streams, endpoint breakers and dashboard sessions; a Redis
that goes away (stopped, or stalled) leaves requests served per process, with one warning and a metric,
and sharing comes back by itself when it returns.

Both replicas hold the same accounts and keys: the first one's data folder, copied before either serves
(shared accounts are the PostgreSQL store's business, not Redis's). The shared Redis (127.0.0.1:6379) is
used with a key prefix of each test's own; the fault test starts a Redis of its own on a free port."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Account, Gateway, free_port, start_gateway, stop_gateway, write_config
from tests.support.dashboard_client import signed_in
from tests.support.upstream import MockUpstream

SHARED_REDIS = "redis://127.0.0.1:6379/0"

pytestmark = pytest.mark.e2e


def ask(model: str = "test/echo", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, **extra}


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10).stdout


def shared_config(tmp_path: Path, upstream: MockUpstream, extra: str, redis_url: str, prefix: str) -> Path:
    return write_config(tmp_path / "routeway.toml", upstream.base_url,
                        extra + f'\n[shared]\nredis = "{redis_url}"\nprefix = "{prefix}"\n')


def twin(tmp_path: Path, config: Path) -> tuple[Gateway, Gateway, Account]:
    """Two gateways with the same accounts and keys, each with its own data folder."""
    first, second = tmp_path / "a" / "data", tmp_path / "b" / "data"
    first.parent.mkdir()
    second.parent.mkdir()
    gateway = start_gateway(config, first)
    account = gateway.account()
    stop_gateway(gateway)
    shutil.copytree(first, second)
    a = start_gateway(config, first)
    try:
        b = start_gateway(config, second)
    except Exception:
        stop_gateway(a)
        raise
    account.gateway = a
    return a, b, account


@pytest.fixture()
def prefix() -> Iterator[str]:
    name = f"rw-test-{uuid.uuid4().hex[:12]}:"
    yield name
    keys = redis_cli(6379, "--scan", "--pattern", name + "*").split()
    if keys:
        redis_cli(6379, "del", *keys)


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll until ``condition`` holds (bounded: a test never hangs on it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def post(gateway: Gateway, key: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(gateway.api + "/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}"})


def test_a_key_limit_holds_across_two_replicas_hammered_at_once(upstream: MockUpstream, tmp_path: Path,
                                                                  prefix: str) -> None:
    config = shared_config(tmp_path, upstream, '\n[limits]\nkey_requests = "30/hour"\n', SHARED_REDIS, prefix)
    a, b, account = twin(tmp_path, config)
    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: post(a if i % 2 else b, account.api_key, ask()), range(100)))
        statuses = [answer.status_code for answer in answers]
        let_through = statuses.count(200)
        # 30, or 31 if the hour turned during the run (the sliding window weighs the last hour's count down)
        assert 30 <= let_through <= 31, statuses
        assert statuses.count(429) == 100 - let_through
        assert all(answer.json()["error"]["metadata"]["limit"] == "30 per 1 hour" for answer in answers
                   if answer.status_code == 429)
        # both replicas served some and refused some: the budget is one, not one each
        assert {answer.status_code for answer in answers[0::2]} == {200, 429} == {a.status_code for a in answers[1::2]}
        generations = len(a.rows("SELECT id FROM generations")) + len(b.rows("SELECT id FROM generations"))
        assert generations == let_through
        key = httpx.get(b.api + "/key", headers={"authorization": f"Bearer {account.api_key}"}).json()["data"]
        assert key["rate_limit"]["requests"] == 30
    finally:
        stop_gateway(a)
        stop_gateway(b)


def test_without_redis_each_process_holds_the_limit_on_its_own(upstream: MockUpstream, tmp_path: Path) -> None:
    """What the README promises without ``[shared] redis``: limits per process, each exact."""
    config = write_config(tmp_path / "routeway.toml", upstream.base_url, '\n[limits]\nkey_requests = "10/hour"\n')
    a, b, account = twin(tmp_path, config)
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: post(a if i % 2 else b, account.api_key, ask()).status_code, range(40)))
        # 10 each, 20 in all (11 if the hour turned during the run: the window weighs the last hour down)
        assert answers[1::2].count(200) in (10, 11) and answers[0::2].count(200) in (10, 11)
    finally:
        stop_gateway(a)
        stop_gateway(b)


def test_concurrent_streams_of_a_key_are_counted_over_both_replicas(upstream: MockUpstream, tmp_path: Path,
                                                                       prefix: str) -> None:
    config = shared_config(tmp_path, upstream, '\n[limits]\nkey_concurrent_streams = 2\n', SHARED_REDIS, prefix)
    a, b, account = twin(tmp_path, config)
    opened = threading.Semaphore(0)
    statuses: list[int] = []

    def slow_stream() -> None:
        with httpx.stream("POST", a.api + "/chat/completions", json=ask("test/slow-stream", stream=True),
                          headers={"authorization": f"Bearer {account.api_key}"}, timeout=30) as answer:
            statuses.append(answer.status_code)
            opened.release()
            for _ in answer.iter_bytes():
                pass

    streams = [threading.Thread(target=slow_stream) for _ in range(2)]
    try:
        for thread in streams:
            thread.start()
        assert opened.acquire(timeout=20) and opened.acquire(timeout=20)
        assert statuses == [200, 200]
        refused = post(b, account.api_key, ask(stream=True))
        assert refused.status_code == 429, refused.text
        assert "2 are open and the limit is 2" in refused.json()["error"]["message"]
        for thread in streams:
            thread.join(30)
        # given back on the replica that held them: the other one lets streams through again
        assert wait_for(lambda: post(b, account.api_key, ask(stream=True)).status_code == 200)
    finally:
        stop_gateway(a)
        stop_gateway(b)


def test_a_breaker_opened_on_one_replica_makes_the_other_skip_the_endpoint(upstream: MockUpstream, tmp_path: Path,
                                                                            prefix: str) -> None:
    config = shared_config(tmp_path, upstream, '\n[routing]\nbreaker_threshold = 2\nbreaker_cooldown = 120\n',
                           SHARED_REDIS, prefix)
    a, b, account = twin(tmp_path, config)

    def breaker_on_b() -> str:
        endpoints = httpx.get(b.api + "/models/test/fail-500/endpoints").json()["data"]["endpoints"]
        return str(endpoints[0]["breaker_state"])

    try:
        assert breaker_on_b() == "closed"
        assert [post(a, account.api_key, ask("test/fail-500")).status_code for _ in range(2)] == [502, 502]
        assert wait_for(lambda: breaker_on_b() == "open"), "the breaker opened on A never showed on B"
        endpoint = httpx.get(b.api + "/models/test/fail-500/endpoints").json()["data"]["endpoints"][0]
        assert endpoint["status"] == -5 and endpoint["uptime_last_5m"] == 0.0  # A's failures, merged into B's view
        calls = sum(1 for body in upstream.requests if body["model"] == "fail-500")
        refused = post(b, account.api_key, ask("test/fail-500"))
        assert refused.status_code in (429, 503) and "breaker" in refused.text, refused.text
        assert sum(1 for body in upstream.requests if body["model"] == "fail-500") == calls  # B never called it
        metrics = httpx.get(b.url + "/metrics").text
        assert 'routeway_endpoint_breaker_state{endpoint="mock/fail-500"} 2.0' in metrics, metrics[:2000]
    finally:
        stop_gateway(a)
        stop_gateway(b)


def test_a_dashboard_session_started_on_one_replica_works_on_the_other(upstream: MockUpstream, tmp_path: Path,
                                                                        prefix: str) -> None:
    a, b, account = twin(tmp_path, shared_config(tmp_path, upstream, "", SHARED_REDIS, prefix))
    try:
        with signed_in(a.url, account.management_key) as on_a:
            cookies = dict(on_a.cookies)
        with httpx.Client(base_url=b.url, cookies=cookies, timeout=30, follow_redirects=False) as on_b:
            page = on_b.get("/keys")
            assert page.status_code == 200 and "api" in page.text, page.headers
            token = page.text.split('name="csrf" value="')[1].split('"')[0]
            assert on_b.post("/signout", data={"csrf": token}).status_code == 303
        with httpx.Client(base_url=a.url, cookies=cookies, timeout=30, follow_redirects=False) as again_on_a:
            assert again_on_a.get("/keys").status_code == 303  # signed out on B is signed out on A
    finally:
        stop_gateway(a)
        stop_gateway(b)


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[tuple[int, Callable[[], subprocess.Popen[bytes]]]]:
    """A Redis of this test's own (free port, no persistence), which it may stop, stall and start again."""
    port = free_port()
    servers: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                                   "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        servers.append(server)
        assert wait_for(lambda: redis_cli(port, "ping").strip() == "PONG")
        return server

    yield port, start
    for server in servers:
        if server.poll() is None:
            server.send_signal(signal.SIGCONT)
            server.terminate()
            server.wait(10)


def test_redis_going_away_degrades_to_per_process_state_and_coming_back_restores_it(
        upstream: MockUpstream, tmp_path: Path, own_redis: tuple[int, Callable[[], subprocess.Popen[bytes]]]) -> None:
    port, start_redis = own_redis
    redis = start_redis()
    (tmp_path / "a").mkdir()
    config = shared_config(tmp_path, upstream, '\n[limits]\nkey_requests = "1000/hour"\n',
                           f"redis://127.0.0.1:{port}/0", "rw-fault:")
    gateway = start_gateway(config, tmp_path / "a" / "data")

    def degraded() -> str:
        line = [m for m in httpx.get(gateway.url + "/metrics").text.splitlines()
                if m.startswith("routeway_shared_state_degraded ")]
        return line[0].split()[1] if line else "missing"

    def counted_in_redis() -> bool:
        return bool(redis_cli(port, "--scan", "--pattern", "rw-fault:rl:*").split())

    try:
        account = gateway.account()
        assert account.chat(ask()).status_code == 200
        assert counted_in_redis() and degraded() == "0.0"

        redis.terminate()
        redis.wait(10)
        with ThreadPoolExecutor(8) as pool:  # during and after the loss: every request is served
            statuses = list(pool.map(lambda _: account.chat(ask()).status_code, range(40)))
        assert statuses == [200] * 40
        assert degraded() == "1.0"

        redis = start_redis()  # empty, on the same port
        assert wait_for(lambda: degraded() == "0.0"), "routeway never noticed Redis was back"
        assert account.chat(ask()).status_code == 200
        assert counted_in_redis()  # counting in Redis again

        redis.send_signal(signal.SIGSTOP)  # stalled: connections open, nothing answers
        try:
            assert [account.chat(ask()).status_code for _ in range(5)] == [200] * 5
            assert degraded() == "1.0"
        finally:
            redis.send_signal(signal.SIGCONT)
        assert wait_for(lambda: degraded() == "0.0")
        log = (tmp_path / "a").glob("routeway-*.log")
        text = "".join(path.read_text() for path in log)
        assert text.count("is unreachable") == 2, text  # one warning per loss, not one per request
    finally:
        stop_gateway(gateway)
