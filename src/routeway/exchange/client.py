"""The client side of an exchange as the core sees it. Each inbound API's renderer implements it
(api/chat_render.py for chat completions), so the core never writes a byte of any API's wire."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol, TypeVar

from routeway.exchange.events import Delta, Outcome

if TYPE_CHECKING:
    from routeway.api.http import Response

T = TypeVar("T")


class Client(Protocol):
    committed: bool  # the status line is out: later errors travel in the body

    async def commit(self) -> None:
        """Send the status line and headers now (a stream, once its first attempt opens)."""

    async def keepalive(self) -> None:
        """Send something every client skips while routeway waits (committing first if need be)."""

    def begin(self, model: str, provider: str) -> None:
        """The model and provider that answer: streamed chunks name them."""

    def deltas(self, deltas: list[Delta]) -> Awaitable[None]:
        """Write one streamed step (one delta per choice that moved); the core awaits what it returns."""

    def unless_gone(self, work: Awaitable[T], keepalive: bool) -> Awaitable[tuple[bool, T | None]]:
        """``(True, result)`` when ``work`` finished, ``(False, None)`` when the client left first (the
        work was cancelled); with ``keepalive``, ``keepalive()`` runs at each interval meanwhile."""


class Renderer(Client, Protocol):
    """An inbound API's renderer: the client side of the exchange, plus the answer's end."""

    generation_id: str

    async def finish(self, outcome: Outcome) -> Response | None:
        """Send (or return) the rest of the answer once the exchange settled."""
