"""Whether one request uses the response cache, for how long, and under which key.

The headers are OpenRouter's: ``X-OpenRouter-Cache: true|false``, ``X-OpenRouter-Cache-TTL`` (seconds,
1–86,400, default 300; read as OpenRouter does: ``60abc`` is 60, ``1.5`` is 1, out of range is clamped),
``X-OpenRouter-Cache-Clear: true`` (drop the entry, answer afresh and keep that). Without the header an
account's own default (``PUT /admin/accounts/{id}/response-cache``) decides; ``false`` always wins."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

DEFAULT_TTL = 300
MAX_TTL = 86_400
_LEADING_DIGITS = re.compile(r"\s*\+?([0-9]+)")
_ON, _OFF = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# Request fields that never change the answer: they stay out of the key, so a repeat with another
# session id or trace still hits. ``stream`` is out too because the stream mode is a part of its own.
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "session_id", "metadata", "trace"})
_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


def ttl_seconds(text: str | None, default: int = DEFAULT_TTL) -> int:
    if text is None:
        return default
    match = _LEADING_DIGITS.match(text)
    if match is None:
        return default
    digits = match.group(1)[:12]  # anything longer is far past the maximum anyway
    return max(1, min(MAX_TTL, int(digits)))


def wanted(headers: Mapping[str, str], account_ttl: int | None) -> int | None:
    """The TTL when this request uses the cache, else None."""
    switch = headers.get("x-openrouter-cache", "").strip().lower()
    if switch in _OFF:
        return None
    if switch not in _ON and account_ttl is None:
        return None
    return ttl_seconds(headers.get("x-openrouter-cache-ttl"), account_ttl or DEFAULT_TTL)


def clears(headers: Mapping[str, str]) -> bool:
    return headers.get("x-openrouter-cache-clear", "").strip().lower() in _ON


@dataclass(frozen=True, slots=True)
class CachePolicy:
    key: str  # sha-256 hex of the scope and the normalized request
    ttl_seconds: int
    clear: bool


def cache_key(key_hash: str, api: str, stream: bool, body: bytes) -> str:
    """The API key, the inbound API, the stream mode and the request body with whitespace and the fields
    that do not change the answer taken out (property order kept, as OpenRouter's key)."""
    parsed: Any = _decode.decode(body)
    if isinstance(parsed, dict):
        parsed = {name: value for name, value in parsed.items() if name not in IGNORED_FIELDS}
    digest = hashlib.sha256()
    for part in (key_hash.encode(), api.encode(), b"stream" if stream else b"whole"):
        digest.update(part + b"\0")
    digest.update(_encode(parsed))
    return digest.hexdigest()
