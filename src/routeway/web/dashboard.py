"""The dashboard as one object the ASGI app hands every non-API request to.

Handlers are ``async def handler(ctx: Ctx) -> Response``; ``Ctx`` carries the request, the visitor's
session, the parsed form of a POST (already CSRF-checked) and the helpers pages share.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from routeway.api.http import ClientDisconnected, Request, Response, Router
from routeway.errors import APIError
from routeway.ledger.accounts import now_ms
from routeway.store.base import StoreUnwritable
from routeway.web.core import PageError, Redirect, Static, base_url, html, make_env, read_form, redirect, render
from routeway.web.sessions import Session, Sessions, fingerprint

if TYPE_CHECKING:
    from routeway.ledger.book import AccountState
    from routeway.services import Services

log = logging.getLogger("routeway.web")

Page = Callable[["Ctx"], Awaitable[Response]]


class Ctx:
    __slots__ = ("dashboard", "request", "session", "form", "cookies", "now_ms")

    def __init__(self, dashboard: Dashboard, request: Request, session: Session | None) -> None:
        self.dashboard = dashboard
        self.request = request
        self.session = session
        self.form: dict[str, str] = {}
        self.cookies: list[tuple[bytes, bytes]] = []  # set-cookie headers to add to the response
        self.now_ms = now_ms()

    @property
    def services(self) -> Services:
        return self.dashboard.services

    @property
    def params(self) -> dict[str, str]:
        return self.request.path_params

    @property
    def query(self) -> dict[str, str]:
        return self.request.query

    def user(self) -> Session:
        """The signed-in session, or a redirect to the sign-in page that comes back here."""
        if self.session is None or not self.session.signed_in:
            target = self.request.scope["path"]
            if self.request.scope.get("query_string"):
                target += "?" + self.request.scope["query_string"].decode("latin-1")
            raise Redirect("/signin?next=" + quote(target, safe=""))
        return self.session

    def account_scope(self) -> str | None:
        """The account whose data the signed-in user sees; None only for the operator viewing all."""
        return self.user().account_id

    def account_required(self) -> str:
        account_id = self.account_scope()
        if account_id is None:
            raise PageError(400, "Pick an account in the menu at the top first: keys and the playground belong to"
                                 " one account.")
        return account_id

    def account(self) -> AccountState:
        """The account that keys and the playground act on (``account_required``)."""
        account = self.services.accounts.get(self.account_required())
        if account is None:
            raise PageError(404, "No such account.")
        return account

    def flash(self, kind: str, text: str) -> None:
        if self.session is not None:
            self.session.flashes.append((kind, text))

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        session = self.session
        flashes: list[tuple[str, str]] = []
        if session is not None:
            flashes, session.flashes = session.flashes, []
        context.update(
            session=session, user=session if session is not None and session.signed_in else None,
            csrf=session.csrf if session is not None else "", flashes=flashes, base_url=base_url(self.request),
            path=self.request.scope["path"], account_name=self._account_name(), accounts=self._accounts(),
        )
        return html(render(self.dashboard.env, template, context), status, self.cookies)

    def _account_name(self) -> str | None:
        if self.session is None or not self.session.signed_in:
            return None
        account = self.services.accounts.get(self.session.account_id or "")
        return account.name if account is not None else ("all accounts" if self.session.operator else None)

    def _accounts(self) -> list[Any]:
        if self.session is None or not self.session.operator:
            return []
        return sorted(self.services.accounts.all(), key=lambda a: a.name)


class Dashboard:
    def __init__(self, services: Services) -> None:
        from routeway.web import account, activity, keys, models, playground, rankings, teams

        self.services = services
        self.env = make_env()
        self.sessions = Sessions(services)
        self.static = Static()
        self.router: Router[Page] = Router()
        for module in (models, rankings, activity, keys, playground, account, teams):
            for method, path, handler in module.routes(self):
                self.router.add(method, path, handler)

    async def __call__(self, request: Request) -> None:
        head = request.method == "HEAD"
        try:
            response = await self._dispatch(request)
        except ClientDisconnected:
            raise
        except Redirect as moved:
            response = redirect(moved.location)
        except PageError as error:
            response = await self.error_page(request, error.status, error.message)
        except APIError as error:  # validation shared with the API (e.g. expires_at), a rate limit, no such route
            response = await self.error_page(request, error.status, error.message)
            # a rate-limited sign-in says when to come back (Retry-After), a 405 which methods to use (Allow)
            response.headers = [*response.headers, *((name.lower().encode(), value.encode())
                                                     for name, value in error.headers.items()
                                                     if name.lower() in ("retry-after", "allow"))]
        except StoreUnwritable as unwritable:  # sessions and pages live in the store: away, it is a 503, not a 500
            response = await self.error_page(request, 503, f"The database is unavailable ({unwritable.problem});"
                                                           " try again shortly.")
        except Exception:
            log.exception("dashboard error on %s %s", request.method, request.scope["path"])
            response = await self.error_page(request, 500, "Internal error; the server log has details.")
        if head:
            response = Response(b"", response.status, response.headers, length=len(response.body))
        await response(request.send)

    async def _dispatch(self, request: Request) -> Response:
        path: str = request.scope["path"]
        if path.startswith("/static/") and request.method in ("GET", "HEAD"):
            found = self.static.response(path[len("/static/"):])
            if found is None:
                raise PageError(404, f"No static file {path}.")
            return found
        method = "GET" if request.method == "HEAD" else request.method
        try:
            handler, request.path_params = self.router.resolve(method, path.rstrip("/") or "/")
        except APIError as error:
            if error.status == 405:
                raise  # its Allow header goes with it
            raise PageError(error.status, "There is no such page." if error.status == 404 else error.message) from None
        ctx = Ctx(self, request, await self.sessions.current(request))
        if method == "POST":
            ctx.form = await read_form(request)
            self.sessions.check_csrf(ctx.session, request, ctx.form)
        session, before = ctx.session, fingerprint(ctx.session)
        try:
            return await handler(ctx)
        finally:  # flashes, a secret shown once, the account picked: on whichever replica serves next
            await self.sessions.save(session, before)

    async def error_page(self, request: Request, status: int, message: str) -> Response:
        ctx = Ctx(self, request, await self.sessions.current(request))
        return ctx.render("error.html", status=status, status_code=status, message=message)
