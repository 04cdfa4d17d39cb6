"""Dashboard sessions in the store, for processes that share it without Redis (the workers of
``serve --workers N``, replicas on one PostgreSQL): a session started by one is found by every other, and
signing out on one ends it on all. It keeps the caps of ``web/session_store.py``: per key (``PER_KEY``),
signed-in (``MAX_SIGNED_IN``) and anonymous (``MAX_ANONYMOUS``), the oldest going first.

A row is found by the SHA-256 of the session's id, and holds the session sealed (AES-GCM) with a key derived
from that id: the id is only in the holder's cookie, so the database (or a backup of it) gives neither a
cookie to replay nor the secrets a session carries (the playground key, a new key shown once). Only what
the caps need stays readable: the owner (a key's digest, or "operator") and the playground key's digest,
so a session pushed out has its playground key deleted as in-process.

Adding a session writes it (sweeping expired rows in the same commit), then reads what is now past a cap
and deletes that: reading after its own commit, the last of several concurrent sign-ins sees them all,
so the caps hold once they are written (two processes may both push out the same oldest session)."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from routeway.store.base import Op, Store, StoreUnwritable
from routeway.web.session_store import MAX_ANONYMOUS, MAX_SIGNED_IN, PER_KEY, owner

if TYPE_CHECKING:
    from routeway.web.sessions import Session

OVERFLOW_BATCH = 1_000  # sessions pushed out by one add at most; the next add takes the rest

_INSERT = ("INSERT INTO dashboard_sessions (id, owner, signed_in, sealed, playground_hash, started_us, expires_at)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)")
_SWEEP = "DELETE FROM dashboard_sessions WHERE expires_at <= ?"
_DELETE = "DELETE FROM dashboard_sessions WHERE id = ?"
_UPDATE = "UPDATE dashboard_sessions SET sealed = ?, playground_hash = ?, expires_at = ? WHERE id = ?"
_GET = "SELECT sealed FROM dashboard_sessions WHERE id = ? AND expires_at > ?"
_OWNERS_OVERFLOW = ("SELECT id, owner, playground_hash FROM dashboard_sessions WHERE owner = ?"
                    " ORDER BY started_us DESC, id DESC LIMIT ? OFFSET ?")
_KIND_OVERFLOW = ("SELECT id, owner, playground_hash FROM dashboard_sessions WHERE signed_in = ?"
                  " ORDER BY started_us DESC, id DESC LIMIT ? OFFSET ?")


def row_id(sid: str) -> str:
    return hashlib.sha256(b"routeway session id\0" + sid.encode()).hexdigest()


def _cipher(sid: str) -> AESGCM:
    return AESGCM(hashlib.sha256(b"routeway session key\0" + sid.encode()).digest())


def seal(session: Session) -> str:
    nonce = os.urandom(12)
    sealed = _cipher(session.id).encrypt(nonce, msgspec.json.encode(session), row_id(session.id).encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(sid: str, sealed: str) -> Session | None:
    from routeway.web.sessions import Session  # web/sessions.py builds its store from services: no cycle at import

    try:
        raw = base64.b64decode(sealed)
        plain = _cipher(sid).decrypt(raw[:12], raw[12:], row_id(sid).encode())
        return msgspec.json.decode(plain, type=Session)
    except (ValueError, InvalidTag, msgspec.ValidationError):  # another routeway version's: sign in again
        return None


class StoreSessionStore:
    """``SessionStore`` (web/session_store.py) on the shared database: reads off the event loop
    (``store.fetch``), writes through the group commit (``store.write``)."""

    def __init__(self, store: Store, per_key: int = PER_KEY, max_signed_in: int = MAX_SIGNED_IN,
                 max_anonymous: int = MAX_ANONYMOUS) -> None:
        self.store = store
        self.per_key, self.max_signed_in, self.max_anonymous = per_key, max_signed_in, max_anonymous

    async def get(self, sid: str) -> Session | None:
        """None while the database cannot be read (PostgreSQL away): pages show as signed out meanwhile,
        and what needs a write (signing in, a form) answers 503 (web/dashboard.py)."""
        try:
            rows = await self.store.fetch(_GET, (row_id(sid), _now_ms()))
        except StoreUnwritable:
            return None
        return unseal(sid, str(rows[0][0])) if rows else None

    async def add(self, session: Session) -> list[Session]:
        whose = owner(session)
        await self.store.write([(_SWEEP, (_now_ms(),)), (_INSERT, (
            row_id(session.id), whose, int(whose is not None), seal(session), _playground_hash(session),
            time.time_ns() // 1000, int(session.expires * 1000)))])
        overflow: dict[str, tuple[Any, ...]] = {}
        if whose is not None:
            for row in await self.store.fetch(_OWNERS_OVERFLOW, (whose, OVERFLOW_BATCH, self.per_key)):
                overflow[row[0]] = row
        cap = self.max_signed_in if whose is not None else self.max_anonymous
        for row in await self.store.fetch(_KIND_OVERFLOW, (int(whose is not None), OVERFLOW_BATCH, cap)):
            overflow[row[0]] = row
        if not overflow:
            return []
        deletes: list[Op] = [(_DELETE, (rid,)) for rid in overflow]
        await self.store.write(deletes)
        return [_pushed_out(whose_, playground_hash) for _, whose_, playground_hash in overflow.values()]

    async def save(self, session: Session) -> None:
        # an UPDATE: a session ended meanwhile (signed out on another process) stays ended
        await self.store.write([(_UPDATE, (seal(session), _playground_hash(session), int(session.expires * 1000),
                                           row_id(session.id)))])

    async def remove(self, sid: str) -> Session | None:
        session = await self.get(sid)
        await self.store.write([(_DELETE, (row_id(sid),))])
        return session


def _now_ms() -> int:
    return int(time.time() * 1000)


def _playground_hash(session: Session) -> str | None:
    return session.playground[1] if session.playground is not None else None


def _pushed_out(whose: str | None, playground_hash: str | None) -> Session:
    """What the caller needs of a session pushed out (its sealed rest cannot be read without its cookie):
    its owner, and its playground key's digest so that key is deleted too (``forget_key`` needs no more)."""
    from routeway.web.sessions import Session

    return Session(id="", csrf="", expires=0.0, key_hash=None if whose == "operator" else whose,
                   operator=whose == "operator", playground=("", playground_hash) if playground_hash else None)
