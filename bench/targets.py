"""The three things measured side by side: the mock itself (floor), nginx in front of it (proxy floor)
and routeway in front of it (authentication, routing and accounting on). Each runs as its own process,
pinned with taskset, on a free loopback port; ``stop()`` ends exactly the process that was started."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ADMIN_KEY = "rw-admin-bench-" + "0" * 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinning() -> dict[str, str | None]:
    """Which CPUs each role gets. The proxy under test always has a core to itself; with only two cores
    the mock and the load generator share the other one (they are the cheap side)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 3:
        return {"proxy": str(cpus[0]), "mock": str(cpus[1]), "client": str(cpus[2])}
    if len(cpus) == 2:
        return {"proxy": str(cpus[0]), "mock": str(cpus[1]), "client": str(cpus[1])}
    return {"proxy": None, "mock": None, "client": None}


def pinned(cpu: str | None, argv: list[str]) -> list[str]:
    return (["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []) + argv


def wait_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:g} s")


@dataclass
class Target:
    name: str
    port: int
    path: str
    key: str
    models: dict[str, str]  # scenario model name → the name this target is asked for
    process: subprocess.Popen | None = None
    log: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_mock(workdir: Path, cpu: str | None) -> Target:
    port = free_port()
    log = workdir / "mock.log"
    process = subprocess.Popen(pinned(cpu, [sys.executable, str(BENCH / "mock_upstream.py"), "--port", str(port)]),
                               stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    wait_port(port, process, "mock upstream")
    return Target("direct", port, "/v1/chat/completions", "none", {}, process, log)


NGINX_CONF = """\
daemon off;
master_process off;            # one process: simple to pin, to stop and to measure
worker_rlimit_nofile 20000;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    upstream mock {{
        server 127.0.0.1:{mock_port};
        keepalive 1024;
        keepalive_requests 10000000;
        keepalive_timeout 120s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;       # relay SSE chunks as they come, as an LLM proxy must
        }}
    }}
}}
"""


def start_nginx(workdir: Path, mock: Target, cpu: str | None) -> Target | None:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        print("nginx not found: apt-get install -y nginx; the proxy floor is skipped", file=sys.stderr)
        return None
    directory = workdir / "nginx"
    directory.mkdir(exist_ok=True)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, mock_port=mock.port, port=port))
    log = directory / "stdout.log"
    process = subprocess.Popen(pinned(cpu, [binary, "-p", str(directory), "-e", str(directory / "error.log"),
                                            "-c", str(conf)]), stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    wait_port(port, process, "nginx")
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    return Target("nginx", port, "/v1/chat/completions", "none", {}, process, log, {"version": version})


def routeway_config(mock_port: int, models: dict[str, str], durability: str = "full", redis: str | None = None) -> str:
    lines = ["[server]", "keepalive_seconds = 2.0", "max_body_bytes = 65536", f'durability = "{durability}"', "",
             # rate limiting on: a per-key limit no scenario reaches, so the check runs on every request
             "[limits]", 'key_requests = "10000000/minute"', "",
             "[[providers]]", 'name = "mock"', 'display_name = "Bench Mock"', 'kind = "openai"',
             f'base_url = "http://127.0.0.1:{mock_port}/v1"',
             "[providers.timeouts]", "connect = 5", "first_byte = 60", "idle = 60", "total = 300", ""]
    if redis:  # rate limits, endpoint health and sessions shared through Redis (its own key prefix per server)
        prefix = f"routeway-bench-{os.getpid()}-{free_port()}:"
        lines += ["[shared]", f'redis = "{redis}"', f'prefix = "{prefix}"', ""]
    for alias, upstream in models.items():
        lines += ["[[models]]", f'id = "{alias}"', f'name = "Bench {upstream}"', "context_length = 8192",
                  "max_output = 1024", 'prompt_price = "1.00"', 'completion_price = "2.00"',
                  'supported_parameters = ["max_tokens", "temperature", "top_p", "stop"]', "",
                  "[[endpoints]]", f'model = "{alias}"', 'provider = "mock"', f'upstream_model = "{upstream}"', ""]
    return "\n".join(lines)


def _admin(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", data=json.dumps(body).encode(),
                                     method="POST", headers={"authorization": f"Bearer {ADMIN_KEY}",
                                                             "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def bench_account(port: int) -> tuple[str, str]:
    """A well-funded account on the routeway at ``port``, and an API key of it: (account id, key)."""
    account = _admin(port, "/admin/accounts", {"name": "bench", "credits": 1_000_000})["data"]["id"]
    # A spending limit on the key too, so the per-key limit check runs on every request.
    key = _admin(port, f"/admin/accounts/{account}/keys", {"name": "bench", "management": False,
                                                            "limit": 1_000_000})["key"]
    return account, key


def start_routeway(workdir: Path, mock: Target, upstream_models: list[str], cpu: str | None,
                   durability: str = "full", python: str | None = None, source: Path | None = None,
                   database_url: str | None = None, env_extra: dict[str, str] | None = None,
                   extra_args: tuple[str, ...] = (), redis: str | None = None) -> Target:
    """``python``: another interpreter with routeway's dependencies; ``source``: a ``src/`` folder to import
    routeway from instead of the installed one (bench/ab.py's other build); ``database_url``: serve from
    this PostgreSQL database instead of SQLite in the work folder; ``env_extra``: variables for this server
    alone (bench/ab.py's ``--b-env``, e.g. traces on)."""
    directory = workdir / "routeway"
    directory.mkdir(exist_ok=True)
    models = {f"bench/{name}": name for name in upstream_models}
    config = directory / "routeway.toml"
    config.write_text(routeway_config(mock.port, models, durability, redis))
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("ROUTEWAY_CONFIG", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "DEEPSEEK_API_KEY", "MISTRAL_API_KEY")}
    env["ROUTEWAY_ADMIN_KEY"] = ADMIN_KEY
    env.pop("ROUTEWAY_DATABASE_URL", None)
    if database_url is not None:
        env["ROUTEWAY_DATABASE_URL"] = database_url
    env.update(env_extra or {})
    if source is not None:
        env["PYTHONPATH"] = str(source)
    exe = ROOT / ".venv" / "bin" / "routeway"
    if python is not None:  # another interpreter with routeway installed (comparing Python versions)
        argv = [python, "-m", "routeway"]
    else:
        argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "routeway"]
    log = directory / "server.log"
    process = subprocess.Popen(
        pinned(cpu, argv + ["serve", "--config", str(config), "--port", str(port), "--data-dir",
                            str(directory / "data"), "--log-level", "warning", *extra_args]),
        env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    wait_port(port, process, f"routeway (log: {log})")
    account, key = bench_account(port)
    return Target("routeway", port, "/api/v1/chat/completions", key, {v: k for k, v in models.items()},
                  process, log, {"account": account})
