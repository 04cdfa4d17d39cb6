"""The gateway's side of one local model: its worker process (``local_engine.py``), supervised and
restarted when it dies, and the queue of requests waiting for it, served one at a time in arrival order.

The worker talks over a socket pair read by the event loop (one JSON line per token), so nothing here
blocks the loop. A full queue is a 429 with Retry-After (the expected wait); a worker that dies fails
the request it was running as an upstream error, and the requests behind it wait for its successor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import asdict
from typing import Any

import msgspec

from routeway.config import LocalModelConfig
from routeway.providers.base import UpstreamError

log = logging.getLogger("routeway.local")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode
LINE_LIMIT = 8 * 1024 * 1024  # one message; a token's text is a few bytes
DONE = ("end", "error", "died")
CANCEL_GRACE = 10.0  # seconds a worker has to confirm a cancel (it takes milliseconds) before it is killed as hung


class Job:
    """One request's place in the queue and, once running, its messages from the worker."""

    __slots__ = ("id", "body", "inbox", "state")

    def __init__(self, job_id: int, body: dict[str, Any]) -> None:
        self.id, self.body = job_id, body
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.state = "waiting"  # → running → done; or cancelled


class LocalWorker:
    def __init__(self, name: str, model: LocalModelConfig) -> None:
        self.name, self.model = name, model
        self.waiting: deque[Job] = deque()
        self.current: Job | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.ready = False
        self.load_failure: str | None = None  # why the last worker died before loading the model
        self.restarts = 0
        self.generated_tokens = 0  # what the engine actually did, cancelled requests included (metrics)
        self.evaluated_tokens = 0
        self.service_seconds = 1.0  # moving average of one request's time on the worker: for Retry-After
        self.started_at = 0.0
        self.next_id = 0
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    # ---- the queue ------------------------------------------------------------------------------
    def submit(self, body: dict[str, Any]) -> Job:
        if self.load_failure is not None and not self.ready:  # no use waiting for the backoff: fall back now
            raise UpstreamError(502, f"The local model could not be loaded ({self.load_failure}); routeway keeps"
                                     " trying.")
        if len(self.waiting) >= self.model.queue_size and (self.current is not None or not self.ready):
            wait = max(1, math.ceil((len(self.waiting) + 1) * self.service_seconds))
            raise UpstreamError(429, f"The local model is busy: {len(self.waiting)} requests are waiting for it.",
                                upstream_status=429, retry_after=str(wait))
        self.next_id += 1
        job = Job(self.next_id, body)
        self.waiting.append(job)
        self._dispatch()
        return job

    def cancel(self, job: Job) -> None:
        """Out of the queue at once; if running, the worker stops between two tokens and says so."""
        if job.state == "waiting":
            job.state = "cancelled"
            self.waiting.remove(job)
        elif job.state == "running":
            job.state = "cancelled"
            self._send({"t": "cancel", "id": job.id})
            asyncio.get_running_loop().call_later(CANCEL_GRACE, self.kill_hung, job)

    def kill_hung(self, job: Job) -> None:
        """A worker still on ``job`` after going silent past the idle timeout, or not confirming its cancel,
        is stuck in native code: kill it (the supervisor restarts it) rather than let the queue wait for ever."""
        if self.current is job and self.process is not None and self.process.returncode is None:
            log.error("local model %s: worker %s hung while answering; killing it", self.name, self.process.pid)
            self.process.kill()

    def _dispatch(self) -> None:
        if self.current is not None or not self.ready or not self.waiting:
            return
        job = self.waiting.popleft()
        job.state, self.current, self.started_at = "running", job, time.monotonic()
        self._send({"t": "run", "id": job.id, "body": job.body})

    def _send(self, message: dict[str, Any]) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(_encode(message) + b"\n")  # buffered: never waits on the worker

    def _finish_current(self, message: dict[str, Any]) -> None:
        job = self.current
        if job is None:
            return
        self.current = None
        elapsed = time.monotonic() - self.started_at
        self.service_seconds = 0.8 * self.service_seconds + 0.2 * elapsed
        if job.state == "running":
            job.state = "done"
        if message["t"] == "end":
            self.generated_tokens += message["completion_tokens"]
            self.evaluated_tokens += message.get("evaluated", 0)
        job.inbox.put_nowait(message)
        self._dispatch()

    # ---- the process ----------------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        self.stopping = True
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def stopped(self) -> bool:
        return self.stopping

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self.stopping:
            began = time.monotonic()
            try:
                code = await self._run_once()
            except OSError as exc:
                code = None
                log.error("local model %s: cannot start its worker: %s", self.name, exc)
            if self.stopped():  # stop() ran while the worker did
                return
            self.restarts += 1
            if time.monotonic() - began > 30:  # it had been working: restart at once; a crash loop backs off
                backoff = 0.5
            log.error("local model %s: worker exited (%s); restarting in %.1f s", self.name, _exit_reason(code),
                      backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _run_once(self) -> int | None:
        ours, theirs = socket.socketpair()
        settings = {**asdict(self.model), "model_path": str(self.model.model_path)}
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "routeway.providers.local_engine", str(theirs.fileno()), json.dumps(settings),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                start_new_session=True)  # a terminal's Ctrl-C reaches routeway, which stops the worker itself
        finally:
            theirs.close()
        reader, self.writer = await asyncio.open_unix_connection(sock=ours, limit=LINE_LIMIT)
        try:
            while True:
                try:
                    line = await reader.readline()
                    message = _decode(line) if line else None
                except (ConnectionError, ValueError, msgspec.DecodeError) as exc:  # ValueError: a line past the limit
                    log.error("local model %s: unreadable message from the worker (%s); restarting it", self.name, exc)
                    message = None
                if message is None:
                    break
                self._on_message(message)
        finally:
            loaded, self.ready = self.ready, False
            self.writer.close()
            self.writer = None
            try:  # a worker that closed its socket is exiting: a moment to say how, then it is killed
                await asyncio.wait_for(asyncio.shield(self.process.wait()), 1.0)
            except TimeoutError:
                self.process.kill()  # the socket is garbled or gone: this worker is done either way
            code = await self.process.wait()
            self._on_death(code, loaded)
        return code

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "ready":
            self.ready, self.load_failure = True, None
            log.info("local model %s: worker %s ready (context %s tokens)", self.name, message.get("pid"),
                     message.get("n_ctx"))
            self._dispatch()
        elif self.current is not None and message.get("id") == self.current.id:
            if kind in DONE:
                self._finish_current(message)
            else:
                self.current.inbox.put_nowait(message)

    def _on_death(self, code: int | None, loaded: bool) -> None:
        """The running request fails as an upstream error; if the model never loaded, so does the queue
        (waiting would not help), else the queue waits for the restarted worker."""
        reason = _exit_reason(code)
        self._finish_current({"t": "died", "status": 502, "message":
                              f"The local engine for this model stopped ({reason}) while answering; routeway is"
                              " restarting it."})
        if not loaded:
            self.load_failure = reason
            while self.waiting:
                job = self.waiting.popleft()
                job.state = "done"
                job.inbox.put_nowait({"t": "died", "status": 502,
                                      "message": f"The local model could not be loaded ({reason})."})

    def snapshot(self) -> dict[str, Any]:
        return {"ready": self.ready, "pid": self.process.pid if self.process else None, "queued": len(self.waiting),
                "busy": self.current is not None, "restarts": self.restarts, "generated": self.generated_tokens,
                "evaluated": self.evaluated_tokens}


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "did not start"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
