"""Resource limits against a real routeway process: slow or silent clients, huge headers, a connection
flood, concurrent streams per key and oversized or deeply nested bodies cannot hold the server, and a
probe request is answered while each attack is still in place. Deadlines are checked as orders of
events (cut off before the client's next byte, still open when the probe answered) and by the refusal
counters in /metrics, never as elapsed-time bounds; socket timeouts only keep a broken server from
hanging the test.

Each test prints the probe's latency and routeway's RSS during its attack (``pytest -s`` shows them).
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway, write_config
from tests.support.upstream import MockUpstream

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2
IDLE_TIMEOUT = 2
SEND_TIMEOUT = 2
MAX_HEADER_BYTES = 16384
MAX_CONNECTIONS = 250
STREAMS_PER_KEY = 3
HANG_GUARD = 30.0  # seconds: turns a server that never answers into a failure instead of a hung test


@pytest.fixture(scope="module")
def gw(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("limits")
    config = write_config(root / "routeway.toml", upstream.base_url,
                          f"\n[limits]\nkey_concurrent_streams = {STREAMS_PER_KEY}\n")
    server = "\n".join(["[server]", "max_body_bytes = 1048576", f"header_timeout_seconds = {HEADER_TIMEOUT}",
                        f"body_timeout_seconds = {BODY_TIMEOUT}", f"idle_timeout_seconds = {IDLE_TIMEOUT}",
                        f"send_timeout_seconds = {SEND_TIMEOUT}",
                        f"max_header_bytes = {MAX_HEADER_BYTES}", f"max_connections = {MAX_CONNECTIONS}"])
    config.write_text(config.read_text().replace("[server]\nkeepalive_seconds = 0.5\nmax_body_bytes = 65536",
                                                 server + "\nkeepalive_seconds = 0.5"))
    gateway = start_gateway(config, root / "data")
    yield gateway
    stop_gateway(gateway)


def rss_mb(gateway: Gateway) -> float:
    for line in Path(f"/proc/{gateway.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def probe(gateway: Gateway, label: str, attack: list[socket.socket] | None = None) -> None:
    """GET /models on a new connection answers 200 and, when the attack's sockets are given, before the
    server has cut off any of those still open when the probe was sent: the server answered during the
    attack, not after it. Prints the latency and RSS (information, not an assertion)."""
    attack = [sock for sock in attack if sock not in cut_off(attack)] if attack is not None else None
    assert attack is None or attack, "the attack was over before the probe was sent"
    started = time.monotonic()
    response = httpx.get(gateway.api + "/models", timeout=HANG_GUARD)
    latency = time.monotonic() - started
    assert response.status_code == 200, response.text
    already = cut_off(attack or [])
    assert not already, f"{len(already)} attacking connections were already cut off when the probe answered"
    print(f"\n[{label}] probe {latency * 1000:.1f} ms, routeway RSS {rss_mb(gateway):.1f} MB")


def refusals(gateway: Gateway) -> dict[str, float]:
    """routeway_client_refusals_total by reason, from /metrics."""
    counts = {}
    for line in httpx.get(gateway.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("routeway_client_refusals_total{"):
            counts[line.split('reason="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return counts


def connect(gateway: Gateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1])), timeout=10)
    return sock


def read_until_closed(sock: socket.socket, limit: float) -> bytes:
    """Everything the server sends until it closes the connection (``limit``: a hang guard per read)."""
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def read_response(sock: socket.socket) -> bytes:
    """One whole answer with a Content-Length, leaving the connection open."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def envelope(raw: bytes, status: int) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), head[:200]
    error = json.loads(body)["error"]
    assert error["code"] == status and error["message"] and error["metadata"]["error_type"], error
    return error


def cut_off(socks: list[socket.socket]) -> list[socket.socket]:
    """The sockets the server has written to (its 408) or closed, all seen at one instant (poll)."""
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(0)}
    return [sock for sock in socks if sock.fileno() in ready]


def answered_or_closed(sock: socket.socket) -> bool:
    """Whether the server has written (its 408) or closed the connection; does not wait."""
    sock.settimeout(0.01)
    try:
        sock.recv(65536)
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_header_clients_are_disconnected(gw: Gateway) -> None:
    """200 sockets each sending one byte of a request head every second are cut off with a 408 after the
    header deadline, while a probe still answers."""
    request = b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    timed_out = refusals(gw)["header_timeout"]
    socks = [connect(gw) for _ in range(200)]
    open_socks = set(range(len(socks)))
    sent = 0
    # the clients' own clock: one byte a second, and they stop after HEADER_TIMEOUT + 4 bytes
    while open_socks and sent < HEADER_TIMEOUT + 4:
        for i in list(open_socks):
            try:
                socks[i].sendall(request[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                open_socks.discard(i)
        sent += 1
        if sent == 1:  # every socket mid-head
            probe(gw, "200 slow-header clients", [socks[i] for i in open_socks])
        time.sleep(1)
        gone = set(cut_off([socks[i] for i in open_socks]))
        open_socks = {i for i in open_socks if socks[i] not in gone}
    try:
        assert not open_socks, f"{len(open_socks)} slow-header connections still open after {sent} bytes"
        assert refusals(gw)["header_timeout"] == timed_out + len(socks)  # cut by the header deadline
        raw = read_until_closed(connect_and_trickle(gw, request[:10]), HANG_GUARD)
        assert envelope(raw, 408)["metadata"]["error_type"] == "timeout"
    finally:
        for sock in socks:
            sock.close()


def connect_and_trickle(gw: Gateway, prefix: bytes) -> socket.socket:
    sock = connect(gw)
    sock.sendall(prefix)
    return sock


def test_silent_connections_are_closed(gw: Gateway) -> None:
    """Connections that never send a byte are closed at the header deadline, without an answer."""
    timed_out = refusals(gw)["header_timeout"]
    silent = [connect(gw) for _ in range(10)]
    probe(gw, "10 silent connections", silent)
    try:
        for sock in silent:
            data = read_until_closed(sock, HANG_GUARD)
            assert data == b""
        assert refusals(gw)["header_timeout"] == timed_out + len(silent)  # closed by the header deadline
    finally:
        for sock in silent:
            sock.close()


def test_idle_keepalive_connection_is_closed(gw: Gateway) -> None:
    kept = connect(gw)
    kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(kept).startswith(b"HTTP/1.1 200 ")
    probe(gw, "an idle keep-alive connection", [kept])  # still open while the deadline runs
    try:
        # closed without a byte; the guard is far below the 20 s default, so this is the configured deadline
        data = read_until_closed(kept, IDLE_TIMEOUT * 5)
        assert data == b""
    finally:
        kept.close()


def test_slow_head_on_a_kept_alive_connection_gets_408(gw: Gateway) -> None:
    """The header deadline starts again with each request on a kept-alive connection."""
    sock = connect(gw)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        timed_out = refusals(gw)["header_timeout"]
        for byte in b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\n"[:HEADER_TIMEOUT * 2 + 3]:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.5)
        # the second head never completes: only a deadline for it can answer
        raw = read_until_closed(sock, HANG_GUARD)
        assert envelope(raw, 408)["metadata"]["error_type"] == "timeout"
        assert refusals(gw)["header_timeout"] == timed_out + 1
    finally:
        sock.close()


def test_slow_body_gets_408(gw: Gateway, upstream: MockUpstream) -> None:
    account = gw.account()
    body = json.dumps({"model": "test/echo", "messages": [{"role": "user", "content": "x" * 200}]}).encode()
    timed_out = refusals(gw)["body_timeout"]
    sock = connect(gw)
    sock.sendall(b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + account.api_key.encode() + b"\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    try:
        probe(gw, "a slow body", [sock])
        # a byte every half second, stopping far short of the body: only the body deadline can answer
        for i in range(10, 10 + HEADER_TIMEOUT + BODY_TIMEOUT + 2):
            time.sleep(0.5)
            try:
                sock.sendall(body[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
        raw = read_until_closed(sock, HANG_GUARD)
        assert envelope(raw, 408)["metadata"]["error_type"] == "timeout"
        assert refusals(gw)["body_timeout"] == timed_out + 1
    finally:
        sock.close()
    assert account.generations() == []  # nothing was reserved or recorded


def test_client_that_never_reads_is_cut_off(gw: Gateway) -> None:
    """Pipelined requests for the ~60 KB catalog, answers never read: once the socket buffers are full,
    the connection is cut within the send deadline instead of holding its task and buffer for ever."""
    size = len(httpx.get(gw.api + "/models", timeout=5).content)
    count = (24 << 20) // size  # well past what the kernel buffers on both sides of loopback
    sock = connect(gw)
    try:
        sock.sendall(b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\n\r\n" * count)
        time.sleep(SEND_TIMEOUT + 1.5)
        probe(gw, f"a client not reading {count} pipelined answers")
        answers = read_until_closed(sock, 5)  # what the buffers held, then the end
        assert answers.count(b"HTTP/1.1 200 ") < count
    finally:
        sock.close()


def test_huge_header_gets_431_without_memory_growth(gw: Gateway) -> None:
    """A 1 MiB header, five times over: each is a 431 in the error envelope; RSS does not follow."""
    before, refused = rss_mb(gw), refusals(gw)["header_too_large"]
    for _ in range(5):
        sock = connect(gw)
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused before the client finished sending
                sock.sendall(b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
            raw = read_until_closed(sock, 5)
            assert envelope(raw, 431)["metadata"]["error_type"] == "payload_too_large"
        finally:
            sock.close()
    probe(gw, "five 1 MiB headers")
    assert rss_mb(gw) - before < 10, (before, rss_mb(gw))
    # many small headers add up the same way
    headers = {f"x-h{i}": "v" * 100 for i in range(200)}
    response = httpx.get(gw.api + "/models", headers=headers, timeout=10)
    assert response.status_code == 431 and response.json()["error"]["code"] == 431
    assert refusals(gw)["header_too_large"] == refused + 6  # an operator sees the attack in /metrics


def test_bytes_that_are_not_http_get_a_400_envelope(gw: Gateway) -> None:
    sock = connect(gw)
    try:
        sock.sendall(b"HELLO\x00 /api/v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = read_until_closed(sock, 5)
        assert envelope(raw, 400)["metadata"]["error_type"] == "invalid_request"
    finally:
        sock.close()


def test_connection_flood_gets_a_clear_503(gw: Gateway) -> None:
    """Past max_connections a request is answered 503 in the error envelope with Retry-After; once the
    flood's silent sockets time out, the probe answers again."""
    refused = refusals(gw)["too_many_connections"]
    flood = [connect(gw) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        response = httpx.get(gw.api + "/models", timeout=5)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["metadata"]["error_type"] == "too_many_connections"
        print(f"\n[{MAX_CONNECTIONS} silent connections] refused with 503 at once, RSS {rss_mb(gw):.1f} MB")
        time.sleep(HEADER_TIMEOUT + 0.5)
        probe(gw, "after the flood timed out")
        assert refusals(gw)["too_many_connections"] == refused + 1
        assert refusals(gw)["header_timeout"] >= MAX_CONNECTIONS  # the flood's silent sockets
    finally:
        for sock in flood:
            sock.close()


def test_concurrent_streams_per_key(gw: Gateway, upstream: MockUpstream) -> None:
    """N streams on one key are served, stream N+1 is a 429 with Retry-After before anything is
    reserved; the count is given back when clients leave, when streams fail and when they finish."""
    account = gw.account()
    url = gw.api + "/chat/completions"
    headers = {"authorization": f"Bearer {account.api_key}"}
    body = {"model": "test/slow-stream", "stream": True, "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}

    def open_streams(client: httpx.Client, count: int) -> list[httpx.Response]:
        streams = []
        for _ in range(count):
            response = client.send(client.build_request("POST", url, json=body, headers=headers), stream=True)
            assert response.status_code == 200, response.read()
            streams.append(response)
        return streams

    with httpx.Client(timeout=10) as client:
        streams = open_streams(client, STREAMS_PER_KEY)
        refused = client.post(url, json=body, headers=headers)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["metadata"]["error_type"] == "rate_limit_exceeded"
        other = gw.account()  # another key is not affected
        assert client.post(url, json=body, headers={"authorization": f"Bearer {other.api_key}"},
                           timeout=10).status_code == 200
        probe(gw, f"{STREAMS_PER_KEY} streams open and one refused")
        for response in streams:
            response.close()  # the client goes away mid-stream

    def all_given_back() -> None:
        deadline = time.monotonic() + 3
        while True:
            with httpx.Client(timeout=10) as client:
                try:
                    for response in open_streams(client, STREAMS_PER_KEY):
                        response.close()
                    time.sleep(0.5)  # the server notices these clients leaving and gives their count back
                    return
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
            time.sleep(0.2)

    all_given_back()  # after the clients left
    for model in ("test/fail-500", "test/midstream-error"):  # before and after the first token
        for _ in range(STREAMS_PER_KEY + 1):
            httpx.post(url, json={**body, "model": model}, headers=headers, timeout=10).read()
    all_given_back()  # after failed streams
    for _ in range(STREAMS_PER_KEY + 1):
        assert b"[DONE]" in httpx.post(url, json={**body, "model": "test/echo"}, headers=headers, timeout=10).read()
    all_given_back()  # after finished streams


def test_too_many_messages_or_tools_are_400(gw: Gateway) -> None:
    account = gw.account()
    many = account.chat({"model": "test/echo", "max_tokens": 5,
                         "messages": [{"role": "user", "content": "hi"}] * 10_001})
    assert many.status_code == 400 and many.json()["error"]["metadata"]["param"] == "messages", many.text
    at_limit = account.chat({"model": "test/echo", "max_tokens": 5,
                             "messages": [{"role": "user", "content": "hi"}] * 10_000})
    assert at_limit.status_code == 404 and "context" in at_limit.text  # valid; too long for the 8,192 context
    tools = [{"type": "function", "function": {"name": f"f{i}"}} for i in range(513)]
    too_many_tools = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "hi"}],
                                   "tools": tools})
    assert too_many_tools.status_code == 400 and too_many_tools.json()["error"]["metadata"]["param"] == "tools"
    probe(gw, "10,001 messages and 513 tools")


def test_deeply_nested_bodies_are_400(gw: Gateway) -> None:
    """10,000 levels (past msgspec's recursion limit) and 200 levels (past routeway's 64) are 400s, on
    chat and on the keys API, never a 500."""
    account = gw.account()
    auth = {"authorization": f"Bearer {account.api_key}", "content-type": "application/json"}
    deep = b"[" * 10_000 + b"]" * 10_000
    for body in (b'{"model": "test/echo", "messages": ' + deep + b"}",
                 b'{"model": "test/echo", "messages": [{"role": "user", "content": "hi", "x": ' + deep + b"}]}"):
        response = httpx.post(gw.api + "/chat/completions", content=body, headers=auth, timeout=10)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["metadata"]["error_type"] == "invalid_request"
    nested: object = "x"
    for _ in range(200):  # under the interpreter's limit, over routeway's: named by field
        nested = {"a": nested}
    moderate = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi", "extra": nested}]}]})
    assert moderate.status_code == 400 and moderate.json()["error"]["metadata"]["param"] == "messages", moderate.text
    schema = account.chat({"model": "test/say", "messages": [{"role": "user", "content": "{}"}],
                           "response_format": {"type": "json_schema",
                                               "json_schema": {"name": "n", "schema": nested}}})
    assert schema.status_code == 400, schema.text
    assert schema.json()["error"]["metadata"]["param"] == "response_format.json_schema.schema"
    management = {"authorization": f"Bearer {account.management_key}", "content-type": "application/json"}
    keys = httpx.post(gw.api + "/keys", content=b'{"name": "k", "junk": ' + deep + b"}", headers=management,
                      timeout=10)
    assert keys.status_code == 400 and keys.json()["error"]["code"] == 400, keys.text
    probe(gw, "nested bodies")


def test_connection_settings_are_read_and_checked(tmp_path: Path) -> None:
    from routeway.config import ConfigError, ConnectionSettings, load_settings

    path = tmp_path / "routeway.toml"
    path.write_text("")
    settings = load_settings(path, env={})
    assert settings.connections == ConnectionSettings() and settings.limits.key_concurrent_streams == 0
    path.write_text("[server]\nmax_header_bytes = 8192\nheader_timeout_seconds = 2.5\nmax_connections = 10\n"
                    "[limits]\nkey_concurrent_streams = 4\n")
    settings = load_settings(path, env={})
    assert settings.connections.max_header_bytes == 8192 and settings.connections.header_timeout_seconds == 2.5
    assert settings.connections.max_connections == 10 and settings.limits.key_concurrent_streams == 4
    for bad in ("[server]\nmax_connections = 0", "[server]\nmax_header_bytes = 1.5",
                "[server]\nbody_timeout_seconds = \"soon\"", "[limits]\nkey_concurrent_streams = -1"):
        path.write_text(bad + "\n")
        with pytest.raises(ConfigError, match=bad.split("\n")[1].split(" ")[0]):
            load_settings(path, env={})


def test_open_file_limit_is_raised_or_the_cap_lowered() -> None:
    """With a hard open-file limit of 300, 4,096 connections cannot fit: the cap comes down to what does."""
    import subprocess
    import sys

    script = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (100, 300));"
              "from routeway.config import ConnectionSettings; from routeway.connections import fit_open_file_limit;"
              "fitted = fit_open_file_limit(ConnectionSettings(max_connections=4096));"
              "print(fitted.max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["22", "300"]  # (300 - 256 reserved) // 2; the soft limit raised to the hard one
