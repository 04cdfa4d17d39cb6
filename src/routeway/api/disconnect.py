"""Run a request's work in its own task, and stop it if the client leaves.

The work is awaited directly (no second task per request); a watcher that reads ``receive()`` for
``http.disconnect`` starts only when the work outlives a short grace period, and cancels the request's
task if the client has gone. Most answers are done within milliseconds, so most requests never create
the watcher (bench/NOTES.md steps 4 and 10)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from routeway.api.http import Request

T = TypeVar("T")
GRACE_SECONDS = 0.05  # before a request starts watching for its client leaving


async def unless_client_leaves(work: Awaitable[T], request: Request,
                               on_idle: Callable[[], Awaitable[None]] | None = None,
                               interval: float | None = None) -> tuple[bool, T | None]:
    """``(True, result)`` when ``work`` finishes; ``(False, None)`` when the client left first (the work
    was cancelled where it stood). With ``on_idle``, call it every ``interval`` seconds while waiting."""
    task = asyncio.current_task()
    assert task is not None
    watch = _Watch(task, request, on_idle, interval)
    grace = min(GRACE_SECONDS, interval) if interval is not None else GRACE_SECONDS
    timer = asyncio.get_running_loop().call_later(grace, watch.start)
    try:
        result = await work
    except BaseException:
        if watch.client_left:
            _consume_cancel(task)
            return False, None
        raise
    finally:
        timer.cancel()
        await watch.stop()
    return True, result


def _consume_cancel(task: asyncio.Task[Any]) -> None:
    """The watcher's cancellation has done its job; it must not leak into the rest of the request."""
    if task.cancelling():
        task.uncancel()


class _Watch:
    __slots__ = ("task", "request", "on_idle", "interval", "watcher", "client_left", "idling", "stopped")

    def __init__(self, task: asyncio.Task[Any], request: Request, on_idle: Callable[[], Awaitable[None]] | None,
                 interval: float | None) -> None:
        self.task = task
        self.request = request
        self.on_idle = on_idle
        self.interval = interval
        self.watcher: asyncio.Task[None] | None = None
        self.client_left = False
        self.idling = False  # on_idle is writing to the client
        self.stopped = False

    def start(self) -> None:
        if not self.stopped:
            self.watcher = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        self.stopped = True
        if self.watcher is None or self.watcher.done():
            return
        if self.idling:
            # a keep-alive write cut in half would leave the response without its head: let it finish,
            # the answer follows it
            await asyncio.wait({self.watcher})
        else:
            self.watcher.cancel()

    async def _watch(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.interval if self.on_idle is not None else None):
                    await wait_for_disconnect(self.request)
            except TimeoutError:
                assert self.on_idle is not None
                self.idling = True
                try:
                    await self.on_idle()
                finally:
                    self.idling = False
                if self.stopped:
                    return
                continue
            if not self.stopped:
                self.client_left = True
                self.task.cancel()
            return


async def wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
