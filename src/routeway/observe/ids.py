"""Request ids and W3C trace context as they arrive from clients: accepted when well-formed, otherwise
made (a request id) or ignored (a traceparent), and written as the header lines that go upstream. Every
value is checked against a strict pattern first, so nothing from a client can split an upstream request."""

from __future__ import annotations

import os
import re

REQUEST_ID = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
# version-traceid-parentid-flags; version ff is invalid, and so are all-zero ids (W3C Trace Context §3.2)
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
_TRACESTATE = re.compile(r"[\x20-\x7e]{1,512}")


def request_id(given: str | None) -> str:
    """The client's ``X-Request-Id`` when it is 1–128 printable characters without spaces, else a new one."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return os.urandom(16).hex()


def traceparent(value: str | None) -> str | None:
    """A W3C ``traceparent`` routeway can continue, or None. Version 00 is exactly 55 characters; a later
    version may append fields, which are kept (the specification's forward compatibility)."""
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) > 55 and (value.startswith("00") or value[55] != "-"):
        return None
    return value if _TRACEPARENT.match(value) else None


def tracestate(value: str | None) -> str | None:
    return value if value is not None and _TRACESTATE.fullmatch(value) else None


def upstream_headers(request: str | None, parent: str | None, state: str | None = None) -> bytes:
    """The header lines an upstream call carries for this request (values already validated)."""
    lines = f"x-request-id: {request}\r\n" if request else ""
    if parent is not None:
        lines += f"traceparent: {parent}\r\n"
        if state is not None:
            lines += f"tracestate: {state}\r\n"
    return lines.encode("ascii")
