"""Server-sent events framing."""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()

PROCESSING = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def event(payload: Any) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"
