"""The dashboard's HTML plumbing: the Jinja2 environment and its filters, HTML and redirect responses,
form bodies, static files and the page errors handlers raise."""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape

from routeway.api.http import Request, Response

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
FORM_LIMIT = 64 * 1024

# Scripts only from our own origin (no inline code), data for charts in <script type="application/json">.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HTML_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class PageError(Exception):
    """A page that cannot be shown: rendered as an HTML error page with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def html(body: str, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return Response(body.encode(), status, HTML_HEADERS + (headers or []))


def redirect(location: str, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return Response(b"", 303, [(b"location", location.encode()), (b"cache-control", b"no-store")] + (headers or []))


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body; anything else (JSON from the playground's fetch) reads as empty."""
    body = await request.body(FORM_LIMIT)
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def base_url(request: Request) -> str:
    """This server as the browser reached it: what the API examples and the playground call."""
    scheme = request.headers.get("x-forwarded-proto") or request.scope.get("scheme", "http")
    host = request.headers.get("x-forwarded-host") or request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("127.0.0.1", 8080)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}"


DEFAULT_NEXT = "/activity"


def safe_next(target: str | None) -> str:
    r"""Where to go after sign-in: a path on this site, else ``DEFAULT_NEXT``.

    Only printable ASCII without spaces or backslashes, starting with exactly one '/'. Browsers drop
    tabs and line breaks from a Location and read '\' as '/', so '/\t/evil.example' or '/\evil.example'
    would lead to another host; a line break or NUL would split the header (uvicorn drops the
    connection). Non-ASCII is refused rather than guessed at: the Location header is bytes."""
    if not target or not target.startswith("/") or target[1:2] == "/":
        return DEFAULT_NEXT
    if not (target.isascii() and target.isprintable()) or " " in target or "\\" in target:
        return DEFAULT_NEXT
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return target


class Static:
    """Every file under static/ read once at start-up; only those names are ever served."""

    def __init__(self, root: Path = STATIC) -> None:
        self.files: dict[str, tuple[bytes, bytes]] = {}
        for path in sorted(root.rglob("*")):
            if path.is_file():
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind.endswith("javascript"):
                    kind += "; charset=utf-8"
                self.files[path.relative_to(root).as_posix()] = (path.read_bytes(), kind.encode())

    def response(self, name: str) -> Response | None:
        found = self.files.get(name)
        if found is None:
            return None
        body, kind = found
        return Response(body, 200, [(b"content-type", kind), (b"cache-control", b"public, max-age=300"),
                                    (b"x-content-type-options", b"nosniff")])


# ---- filters ----------------------------------------------------------------------------------------

def compact(value: float | int | None) -> str:
    """1234 → 1.23K, 2_810_000_000 → 2.81B: the seed page's way of showing token counts."""
    if value is None:
        return "—"
    value = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}" if value == int(value) else f"{value:.3g}"


def usd(value: float | None, digits: int = 6) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "$" + (text if text not in ("0", "-0") else f"{value:.2e}")


def per_million(nano_per_m: int | None) -> str:
    """A price in nano-USD per 1M tokens as the seed shows it: "$0.13"."""
    if nano_per_m is None:
        return "—"
    value = nano_per_m / 1e9
    return f"${value:,.2f}" if value * 100 == int(value * 100) else f"${value:,.4g}"


def when(ms: int | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(fmt)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%".replace(".0%", "%")


def number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def make_env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      auto_reload=False, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(compact=compact, usd=usd, per_million=per_million, when=when, pct=pct, number=number,
                       date=lambda ms: when(ms, "%b %d, %Y"))
    return env


def render(env: Environment, name: str, context: dict[str, Any]) -> str:
    return env.get_template(name).render(context)
