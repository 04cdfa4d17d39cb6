"""The disconnect watch on its own: work runs in the caller's task, a watcher starts only after the grace
period, a client that leaves cancels the work, and a keep-alive write is never cut in half."""

from __future__ import annotations

import asyncio

import pytest

from routeway.api import disconnect
from routeway.api.disconnect import unless_client_leaves
from routeway.api.http import Request


class Client:
    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.receives = 0

    async def receive(self) -> dict:
        self.receives += 1
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def request(self) -> Request:
        async def send(message: dict) -> None:
            pass
        return Request({"type": "http", "headers": []}, self.receive, send)


def test_fast_work_never_starts_a_watcher() -> None:
    async def main() -> None:
        client = Client()

        async def work() -> str:
            await asyncio.sleep(0.001)
            return "answer"

        assert await unless_client_leaves(work(), client.request()) == (True, "answer")
        await asyncio.sleep(disconnect.GRACE_SECONDS * 2)
        assert client.receives == 0
    asyncio.run(main())


def test_a_client_that_leaves_cancels_the_work_and_the_task_carries_on() -> None:
    async def main() -> None:
        client = Client()
        cancelled = asyncio.Event()

        async def work() -> str:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "never"

        asyncio.get_running_loop().call_later(0.1, client.gone.set)
        assert await unless_client_leaves(work(), client.request()) == (False, None)
        assert cancelled.is_set()
        await asyncio.sleep(0.01)  # the request's task is not left half-cancelled: it can still wait
        assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]
    asyncio.run(main())


def test_shutdown_cancellation_is_not_mistaken_for_a_client_leaving() -> None:
    async def main() -> None:
        client = Client()
        handler = asyncio.ensure_future(unless_client_leaves(asyncio.sleep(10), client.request()))
        await asyncio.sleep(0.1)
        handler.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handler
    asyncio.run(main())


def test_keepalive_writes_repeat_and_finish_before_the_answer() -> None:
    async def main() -> None:
        client = Client()
        log: list[str] = []

        async def on_idle() -> None:
            log.append("idle-start")
            await asyncio.sleep(0.15)  # a slow write (the second one is still going when the work ends)
            log.append("idle-end")

        async def work() -> str:  # the watcher starts at 0.05 s; writes at 0.25-0.40 s and 0.60-0.75 s
            await asyncio.sleep(0.67)
            return "answer"

        finished, result = await unless_client_leaves(work(), client.request(), on_idle, 0.2)
        log.append("answer")
        assert (finished, result) == (True, "answer")
        assert log.count("idle-start") >= 2 and log[-2:] == ["idle-end", "answer"]
    asyncio.run(main())
