"""Dashboard sessions and CSRF protection.

A session is a random id in an HttpOnly, SameSite=Lax cookie pointing at a record kept in memory on
the server (a restart signs everyone out). Signing in with a management key binds the session to that
key's account; the operator key (ROUTEWAY_ADMIN_KEY) sees every account and may pick one. Visitors who
only open the sign-in form get a short-lived anonymous session, so that form carries a CSRF token too.

Every POST must carry the session's CSRF token, as the form field ``csrf`` or the ``X-CSRF-Token``
header (the playground's fetch); a request whose ``Origin`` names another site is refused as well.
Sessions end on sign-out, after ``SESSION_SECONDS``, or as soon as their management key is disabled,
deleted or expires, or when newer sessions push them out of the store (web/session_store.py).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING

import msgspec

from routeway.api.http import Request
from routeway.ledger.accounts import now_ms
from routeway.web.core import PageError
from routeway.web.session_store import MemorySessionStore, SessionStore

if TYPE_CHECKING:
    from routeway.services import Services

COOKIE = "rw_session"
SESSION_SECONDS = 12 * 3600
ANONYMOUS_SECONDS = 3600


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    expires: float
    key_hash: str | None = None  # the management key signed in with
    operator: bool = False
    account_id: str | None = None  # whose data this session sees; None for the operator = every account
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, text), shown once
    new_secret: tuple[str, str] | None = None  # (key name, secret) of a key just created, shown once
    playground: tuple[str, str] | None = None  # (secret, hash) of the key the playground minted

    @property
    def signed_in(self) -> bool:
        return self.operator or self.key_hash is not None


class Sessions:
    def __init__(self, services: Services, store: SessionStore | None = None) -> None:
        self.services = services
        self.store: SessionStore = store or services.session_store or MemorySessionStore()
        self.evicted_playgrounds: list[tuple[str, str]] = []  # keys of pushed-out sessions, for the caller to delete

    # ---- lookup ---------------------------------------------------------------------------------
    async def current(self, request: Request) -> Session | None:
        sid = cookie_value(request, COOKIE)
        session = await self.store.get(sid) if sid else None
        if session is None:
            return None
        if session.expires <= time.time() or not self._key_valid(session):
            await self.end(session)
            return None
        return session

    def _key_valid(self, session: Session) -> bool:
        if session.operator or session.key_hash is None:
            return True
        key = self.services.accounts.key(session.key_hash)
        return (key is not None and not key.deleted and not key.disabled
                and (key.expires_at is None or key.expires_at > now_ms()))

    # ---- life cycle -----------------------------------------------------------------------------
    async def start(self, *, key_hash: str | None = None, operator: bool = False,
                    account_id: str | None = None) -> Session:
        """A new session with a new id and CSRF token (a sign-in never keeps the anonymous id)."""
        signed_in = operator or key_hash is not None
        session = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                          expires=time.time() + (SESSION_SECONDS if signed_in else ANONYMOUS_SECONDS),
                          key_hash=key_hash, operator=operator, account_id=account_id)
        for evicted in await self.store.add(session):
            if evicted.playground is not None:
                self.evicted_playgrounds.append(evicted.playground)
        return session

    async def end(self, session: Session) -> tuple[str, str] | None:
        """Forget the session; returns its playground key (secret, hash) for the caller to delete."""
        await self.store.remove(session.id)
        return session.playground

    async def save(self, session: Session | None, before: bytes | None) -> None:
        """Write the request's changes to ``session`` back to the store, when it made any."""
        if session is not None and before is not None and fingerprint(session) != before:
            await self.store.save(session)

    def take_evicted_playgrounds(self) -> list[tuple[str, str]]:
        taken, self.evicted_playgrounds = self.evicted_playgrounds, []
        return taken

    # ---- cookies and CSRF -----------------------------------------------------------------------
    @staticmethod
    def cookie(session: Session, request: Request) -> tuple[bytes, bytes]:
        secure = "; Secure" if _is_https(request) else ""
        max_age = int(session.expires - time.time())
        return (b"set-cookie",
                f"{COOKIE}={session.id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}".encode())

    @staticmethod
    def clear_cookie() -> tuple[bytes, bytes]:
        return (b"set-cookie", f"{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0".encode())

    @staticmethod
    def check_csrf(session: Session | None, request: Request, form: dict[str, str]) -> None:
        origin = request.headers.get("origin")
        if origin and origin != "null":
            host = origin.split("://", 1)[-1]
            if host not in (request.headers.get("host"), request.headers.get("x-forwarded-host")):
                raise PageError(403, "This form was sent from another site; open the dashboard and try again.")
        token = form.get("csrf") or request.headers.get("x-csrf-token") or ""
        if session is None or not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise PageError(403, "The form's security token (CSRF) is missing or out of date; reload the page"
                                 " and try again.")


def fingerprint(session: Session | None) -> bytes | None:
    """The session as stored, to tell whether a request changed it."""
    return msgspec.json.encode(session) if session is not None else None


def cookie_value(request: Request, name: str) -> str | None:
    raw = request.headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed cookie header from some other app on the same host
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _is_https(request: Request) -> bool:
    return (request.headers.get("x-forwarded-proto") or request.scope.get("scheme", "http")) == "https"
