"""``routeway serve --workers N``: one supervisor, N serving processes on one listening socket.

The supervisor binds the socket, owns the data folder (the store's claim: no other ``routeway serve``
can start on it), applies the migrations once, then starts each worker as a fresh interpreter
(``python -m routeway serve …`` with the socket passed as an inherited file descriptor: no fork of a
process with threads). The kernel spreads connections between the workers accepting on the socket.

Each worker is told its index, the group's size and its lease holder name (``ROUTEWAY_WORKER``); it
shares the store with the others through credit leases and the change log (ledger/leases.py,
ledger/follow.py). When a worker exits unasked the supervisor deletes its leases at once (it is dead, so
nothing more can be charged against them: their unspent part is free again, their charges are in the
ledger) and starts a new one, after a pause that grows while workers keep dying young. SIGTERM or SIGINT
to the supervisor is passed to every worker, which finishes its requests, settles, and returns its leases;
a worker that finds its supervisor gone stops too.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from routeway.config import Settings, WorkerRole
from routeway.store.base import Store, StoreUnwritable
from routeway.store.leases import LeaseRepository

log = logging.getLogger("routeway.workers")

ENV = "ROUTEWAY_WORKER"  # "index processes holder parent_pid fd" in a worker's environment
STOP_SECONDS = 15  # how long workers get to finish and settle after SIGTERM before they are killed
RESTART_PAUSE = (0.2, 10.0)  # first and longest pause before restarting a worker that died young
YOUNG_SECONDS = 10.0


def role_from_env(environ: dict[str, str] | os._Environ[str]) -> tuple[WorkerRole, int] | None:
    """This process's role and the listening socket's descriptor, when it is a worker."""
    value = environ.get(ENV)
    if not value:
        return None
    index, processes, holder, parent, fd = value.split()
    return WorkerRole(int(index), int(processes), holder, int(parent)), int(fd)


def share_cores(settings: Settings, processes: int) -> Settings:
    """Each worker runs its own engine for every local model; left to llama.cpp's default (half the CPUs)
    N engines would ask for N halves. A local model without ``threads`` gets half the CPUs split between
    the workers instead (at least one)."""
    share = max(1, (os.cpu_count() or 2) // 2 // processes)
    providers = tuple(replace(p, local=replace(p.local, threads=share)) if p.local and p.local.threads is None else p
                      for p in settings.providers)
    return replace(settings, providers=providers)


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class _Worker:
    index: int
    holder: str
    process: subprocess.Popen[bytes]
    started: float


class Supervisor:
    def __init__(self, argv: Sequence[str], workers: int, host: str, port: int, store: Store) -> None:
        self.argv = list(argv)
        self.count = workers
        self.store = store  # claimed and open: the group's, for releasing a dead worker's leases
        self.leases = LeaseRepository(store)
        self.sock = listening_socket(host, port)
        self.group = secrets.token_hex(4)
        self.generation = 0
        self.workers: dict[int, _Worker] = {}
        self.pause = RESTART_PAUSE[0]
        self.stopping = False

    def _spawn(self, index: int) -> None:
        self.generation += 1
        holder = f"{self.group}-{index}-{self.generation}"
        env = dict(os.environ)
        env[ENV] = f"{index} {self.count} {holder} {os.getpid()} {self.sock.fileno()}"
        process = subprocess.Popen([sys.executable, "-m", "routeway", *self.argv], env=env,
                                   pass_fds=(self.sock.fileno(),))
        self.workers[index] = _Worker(index, holder, process, time.monotonic())

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for index in range(self.count):
            self._spawn(index)
        while not self.stopping:
            time.sleep(0.1)
            for worker in list(self.workers.values()):
                code = worker.process.poll()
                if code is None or self.stopping:
                    continue
                self._release(worker)
                lived = time.monotonic() - worker.started
                self.pause = RESTART_PAUSE[0] if lived > YOUNG_SECONDS else min(self.pause * 2, RESTART_PAUSE[1])
                log.warning("worker %d (pid %d) exited with %s after %.1f s; its credit leases are released;"
                            " restarting it in %.1f s", worker.index, worker.process.pid, code, lived, self.pause)
                time.sleep(self.pause)
                if not self.stopping:
                    self._spawn(worker.index)
        deadline = time.monotonic() + STOP_SECONDS
        for worker in self.workers.values():
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            self._release(worker)  # a worker killed, or one that could not return them itself
        self.sock.close()
        self.store.close()
        return 0

    def _release(self, worker: _Worker) -> None:
        try:
            self.store.write_now([self.leases.release(worker.holder)])  # type: ignore[attr-defined]
        except StoreUnwritable as exc:
            log.error("cannot release the credit leases of worker %d (%s): they expire by themselves", worker.index,
                      exc.problem)


def serve_worker(app: object, fd: int, role: WorkerRole, config_kwargs: dict[str, object]) -> None:
    """Run uvicorn on the inherited socket; stop when the supervisor is gone."""
    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(app, **config_kwargs)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    _watch_parent(server, role.parent_pid)
    server.run(sockets=[sock])


def _watch_parent(server: object, parent_pid: int) -> None:
    """A worker whose supervisor died (SIGKILL) would serve on without anyone releasing its leases or
    holding the data folder's claim: it notices within a second and shuts down as on SIGTERM."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                server.should_exit = True  # type: ignore[attr-defined]
                return

    threading.Thread(target=watch, name="routeway-parent-watch", daemon=True).start()
