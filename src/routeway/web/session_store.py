"""Where dashboard sessions live: a small interface, so a shared store (Redis, the database) can replace
the in-process one when routeway runs as several processes.

No one can fill the store for everyone else. Signed-in sessions are capped per key (the management key,
or the operator key) at ``PER_KEY``: a key's newest sign-in ends its oldest session. The whole store is
capped too, but overflow ends the oldest sessions instead of refusing new ones, and anonymous sessions
(opened by anyone who loads the sign-in form, only to carry its CSRF token) are counted apart from
signed-in ones, so a flood of them can only push out other anonymous sessions.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from routeway.web.sessions import Session

PER_KEY = 20
MAX_SIGNED_IN = 20_000
MAX_ANONYMOUS = 10_000


class SessionStore(Protocol):
    """Asynchronous, as sessions may live in Redis (``shared/sessions.py``), where any replica finds them."""

    async def get(self, sid: str) -> Session | None: ...

    async def add(self, session: Session) -> list[Session]:
        """Keep ``session``; returns the sessions it pushed out (oldest first), which are gone now."""

    async def save(self, session: Session) -> None:
        """Keep the changes a request made to a session it read (flashes, a new key shown once, ...)."""

    async def remove(self, sid: str) -> Session | None: ...


def owner(session: Session) -> str | None:
    """Whose quota a session counts against: its key, or the operator; None for an anonymous session."""
    return "operator" if session.operator else session.key_hash


class MemorySessionStore:
    """The sessions of this process, in start order (so the oldest is first to go)."""

    def __init__(self, per_key: int = PER_KEY, max_signed_in: int = MAX_SIGNED_IN,
                 max_anonymous: int = MAX_ANONYMOUS) -> None:
        self.per_key, self.max_signed_in, self.max_anonymous = per_key, max_signed_in, max_anonymous
        self._signed_in: OrderedDict[str, Session] = OrderedDict()
        self._anonymous: OrderedDict[str, Session] = OrderedDict()
        self._by_owner: dict[str, OrderedDict[str, None]] = {}

    async def get(self, sid: str) -> Session | None:
        return self.get_now(sid)

    def get_now(self, sid: str) -> Session | None:
        return self._signed_in.get(sid) or self._anonymous.get(sid)

    async def add(self, session: Session) -> list[Session]:
        return self.add_now(session)

    async def save(self, session: Session) -> None:
        pass  # callers change the very object kept here

    async def remove(self, sid: str) -> Session | None:
        return self.remove_now(sid)

    def add_now(self, session: Session) -> list[Session]:
        self._expire()
        gone: list[Session] = []
        key = owner(session)
        if key is None:
            self._anonymous[session.id] = session
            while len(self._anonymous) > self.max_anonymous:
                gone.append(self._anonymous.popitem(last=False)[1])
            return gone
        self._signed_in[session.id] = session
        mine = self._by_owner.setdefault(key, OrderedDict())
        mine[session.id] = None
        while len(mine) > self.per_key:
            gone.append(self._drop(next(iter(mine))))
        while len(self._signed_in) > self.max_signed_in:
            gone.append(self._drop(next(iter(self._signed_in))))
        return gone

    def remove_now(self, sid: str) -> Session | None:
        if sid in self._signed_in:
            return self._drop(sid)
        return self._anonymous.pop(sid, None)

    def __len__(self) -> int:
        return len(self._signed_in) + len(self._anonymous)

    def _drop(self, sid: str) -> Session:
        session = self._signed_in.pop(sid)
        key = owner(session)
        mine = self._by_owner.get(key) if key is not None else None
        if mine is not None:
            mine.pop(sid, None)
            if not mine:
                del self._by_owner[key]  # type: ignore[arg-type]
        return session

    def _expire(self) -> None:
        """Forget sessions past their end, from the front: each kind has one lifetime, so start order is
        end order. (Their playground keys expire with them.)"""
        now = time.time()
        while self._anonymous and next(iter(self._anonymous.values())).expires <= now:
            self._anonymous.popitem(last=False)
        while self._signed_in and next(iter(self._signed_in.values())).expires <= now:
            self._drop(next(iter(self._signed_in)))
