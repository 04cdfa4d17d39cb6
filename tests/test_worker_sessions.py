"""Dashboard sessions under ``serve --workers 2`` without Redis (issue 12): they live in the shared store
(store/sessions.py), so a request on a fresh connection is signed in whichever worker the kernel hands it
to, a sign-out on one worker ends the session on the other, and the per-key cap holds across workers. The
same for two replicas on one PostgreSQL."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from routeway.web.session_store import PER_KEY

from tests.conftest import Gateway, start_gateway, stop_gateway, write_config
from tests.support.postgres import ThrowawayDatabase, available as postgres_available
from tests.test_full_disk import DISK_BYTES, fill
from tests.test_workers import worker_pids

pytestmark = pytest.mark.e2e

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture()
def workers_gateway(upstream: Any, tmp_path: Path) -> Iterator[Gateway]:
    config = write_config(tmp_path / "routeway.toml", upstream.base_url,
                          '\n[limits]\nsignin_failures_per_address = ""\nsignin_per_key = ""\n')
    gw = start_gateway(config, tmp_path / "data", args=("--workers", "2"))
    yield gw
    stop_gateway(gw)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for the data folder, as in tests/test_full_disk.py (root here and in CI)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


class Answer:
    def __init__(self, status: int, headers: http.client.HTTPMessage, text: str, worker: int) -> None:
        self.status, self.headers, self.text, self.worker = status, headers, text, worker


def _server_side_inode(client_port: int, server_port: int) -> str:
    """The inode of the server's end of our connection, from the kernel's table of TCP sockets."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return inode
    raise AssertionError(f"no server socket for client port {client_port}")


def _owner_of(inode: str, pids: list[int]) -> int:
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except FileNotFoundError:
                continue
    raise AssertionError(f"no worker holds socket {inode}")


def fresh(gw: Gateway, method: str, path: str, cookie: str | None = None,
          form: dict[str, str] | None = None) -> Answer:
    """One request on a new connection, and which worker answered it (the one holding the server's end
    of the connection, still open after the answer: keep-alive)."""
    url = urlsplit(gw.url)
    assert url.hostname is not None and url.port is not None
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        headers = {"cookie": cookie} if cookie else {}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["content-type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read().decode()
        worker = _owner_of(_server_side_inode(connection.sock.getsockname()[1], url.port), worker_pids(gw))
        return Answer(answer.status, answer.headers, text, worker)
    finally:
        connection.close()


def _cookie_of(answer: Answer) -> str:
    found = re.search(r"rw_session=([^;]*)", answer.headers.get("set-cookie", ""))
    assert found, answer.headers
    return f"rw_session={found.group(1)}"


def sign_in(gw: Gateway, key: str) -> tuple[str, set[int]]:
    """Open the sign-in form and send it, each on a fresh connection: the anonymous session carrying the
    form's CSRF token must be found by whichever worker gets the POST. Returns the cookie and the workers."""
    form = fresh(gw, "GET", "/signin")
    assert form.status == 200, form.text
    token = _CSRF.search(form.text)
    assert token, form.text
    done = fresh(gw, "POST", "/signin", _cookie_of(form), {"csrf": token.group(1), "key": key, "next": "/keys"})
    assert done.status == 303, done.text
    return _cookie_of(done), {form.worker, done.worker}


def test_a_session_works_on_every_worker_and_ends_on_all(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    assert len(worker_pids(gw)) == 2
    account = gw.account()
    cookie, _ = sign_in(gw, account.management_key)
    pages = [fresh(gw, "GET", "/keys", cookie) for _ in range(30)]
    assert [p.status for p in pages] == [200] * 30, [(p.status, p.worker) for p in pages]
    assert len({p.worker for p in pages}) == 2  # the kernel spread the connections over both workers

    token = _CSRF.search(pages[0].text)
    assert token
    out = fresh(gw, "POST", "/signout", cookie, {"csrf": token.group(1)})
    assert out.status == 303
    after = [fresh(gw, "GET", "/keys", cookie) for _ in range(20)]
    assert {p.worker for p in after} == {p.worker for p in pages}  # the other worker asked too
    assert [p.status for p in after] == [303] * 20  # signed out everywhere


def test_a_keys_sessions_are_capped_across_workers(workers_gateway: Gateway) -> None:
    gw = workers_gateway
    account = gw.account()
    cookies, workers = [], set()
    for _ in range(PER_KEY + 3):
        cookie, used = sign_in(gw, account.management_key)
        cookies.append(cookie)
        workers |= used
    assert len(workers) == 2
    alive = [fresh(gw, "GET", "/keys", cookie).status == 200 for cookie in cookies]
    assert alive == [False] * 3 + [True] * PER_KEY  # the oldest three were pushed out, whichever worker holds them


@pytest.mark.skipif(not postgres_available(), reason="no PostgreSQL on 127.0.0.1:5432")
def test_a_session_started_on_one_postgresql_replica_works_on_the_other(upstream: Any, tmp_path: Path) -> None:
    database = ThrowawayDatabase()
    config = write_config(tmp_path / "routeway.toml", upstream.base_url)
    url = database.url_for(str(tmp_path))
    replicas = [start_gateway(config, tmp_path / name, {"ROUTEWAY_DATABASE_URL": url}) for name in ("a", "b")]
    try:
        a, b = replicas
        account = a.account()
        form = httpx.get(a.url + "/signin")
        token = _CSRF.search(form.text)
        assert token
        signed = httpx.post(b.url + "/signin", cookies=form.cookies, follow_redirects=False,  # the form's session
                            data={"csrf": token.group(1), "key": account.management_key, "next": "/keys"})
        assert signed.status_code == 303, signed.text
        page = httpx.get(a.url + "/keys", cookies=signed.cookies, follow_redirects=False)
        assert page.status_code == 200
        token = _CSRF.search(page.text)
        assert token
        assert httpx.post(a.url + "/signout", cookies=signed.cookies, data={"csrf": token.group(1)},
                          follow_redirects=False).status_code == 303
        assert httpx.get(b.url + "/keys", cookies=signed.cookies, follow_redirects=False).status_code == 303
    finally:
        for replica in replicas:
            stop_gateway(replica)
        database.drop()


def test_a_full_disk_makes_sign_in_a_503_not_a_500_and_it_recovers(upstream: Any, tmp_path: Path,
                                                                  small_disk: Path) -> None:
    """Sessions are written to the store: a sign-in form that cannot be written is a 503 page."""
    gw = start_gateway(write_config(tmp_path / "routeway.toml", upstream.base_url), small_disk,
                       args=("--workers", "2"))
    try:
        account = gw.account()
        filler = fill(small_disk)
        statuses = [fresh(gw, "GET", "/signin") for _ in range(10)]
        assert {a.status for a in statuses} <= {200, 503}, [(a.status, a.text[-300:]) for a in statuses]
        refused = [a for a in statuses if a.status == 503]
        assert refused and "The database is unavailable" in refused[0].text
        filler.unlink()
        deadline = time.monotonic() + 10
        while True:
            try:
                sign_in(gw, account.management_key)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        stop_gateway(gw)
