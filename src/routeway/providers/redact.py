"""Keeping secrets out of what upstreams say.

An upstream's error body, a stream's error event or a malformed answer ends up in the client's error
(``message``, ``metadata.raw``), the generation record, ``GET /generation``, the dashboard and possibly the
log. Proxies and engines sometimes repeat the request's headers there, provider key included. So every
``UpstreamError`` leaving an adapter passes a ``Redactor`` (``UpstreamError.redacted``): one place, and
every later path only ever sees clean text.

Removed, each replaced by ``[REDACTED]``:
- every configured secret: each provider's key (``api_key_env``), the values of configured provider
  headers whose name looks secret (``authorization``, ``x-api-key``, ``api-key``, ``*token*``, …) with and
  without their ``Bearer``/``Basic`` scheme, and the operator key — as written, url-encoded or JSON-escaped,
  in any letter case;
- anything shaped like a credential: ``Bearer <token>``, ``sk-…`` keys, the value of an
  ``authorization`` / ``x-api-key`` / ``api_key`` / ``access_token`` header or field, ``?key=…`` in a URL.

It runs on error paths only (never per streamed chunk): two compiled patterns, the configured secrets
first (so a shape can never take half a secret and leave the rest), then the shapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from routeway.config import ProviderConfig, Settings

MARKER = "[REDACTED]"
MIN_SECRET = 6  # a shorter configured value would blank out ordinary words; no real credential is that short
_SECRET_HEADER = re.compile(r"auth|key|token|secret|password|signature|credential", re.I)
_SCHEME = re.compile(r"^(?:bearer|basic|token)\s+", re.I)
_TOKEN = r"[A-Za-z0-9\-._~+/]"

# Credential shapes, tried after the configured secrets. The named prefix of each is kept.
_SHAPES = (
    # a header or JSON/form field that carries a credential: keep the name, drop the value and its scheme
    r"(?P<field>\b(?:proxy-)?authorization|\bx-(?:goog-)?api-key|\bapi[-_]?key|\baccess[-_]token|\bsecret[-_]key)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|token)\s+)?[^\s\"',;}&]+",
    # a bearer token on its own: 8+ token characters with a digit, or 20+ (not "Bearer authentication")
    rf"(?P<scheme>\b(?:bearer|basic)\s+)(?:(?={_TOKEN}*\d){_TOKEN}{{8,}}|{_TOKEN}{{20,}})=*",
    # OpenAI-style keys: sk-…, sk-proj-…, sk-ant-…, sk-or-v1-…, sk-rw-v1-…
    r"\bsk-[A-Za-z0-9_\-]{8,}",
    # a key in a URL's query string
    r"(?P<param>[?&](?:key|api[-_]?key|access_token|token)=)[^&\s\"'#]+",
)


class Redactor:
    """Removes routeway's secrets and anything credential-shaped from a text; see the module docstring."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str]) -> None:
        literals = sorted({form for secret in secrets if len(secret) >= MIN_SECRET for form in _forms(secret)},
                          key=len, reverse=True)  # longest first: a secret that contains another goes whole
        self._secrets = re.compile("|".join(map(re.escape, literals)), re.I) if literals else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        secrets = [secret for provider in settings.providers for secret in provider_secrets(provider, settings.env)]
        if settings.admin_key:
            secrets.append(settings.admin_key)
        return cls(secrets)

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(MARKER, text)
        return _SHAPE_PATTERN.sub(_replace, text)


def provider_secrets(provider: ProviderConfig, env: Mapping[str, str]) -> list[str]:
    """The provider's key and the secret-looking values among its configured headers."""
    found = []
    key = provider.api_key(env)
    if key:
        found.append(key)
    for name, value in provider.headers.items():
        if _SECRET_HEADER.search(name) and value.strip():
            found += [value.strip(), _SCHEME.sub("", value.strip())]
    return found


def _forms(secret: str) -> set[str]:
    """How a secret may appear in an upstream's text: as is, url-encoded, JSON-escaped (``/`` as ``\\/`` too)."""
    escaped = json.dumps(secret)[1:-1]
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), escaped, escaped.replace("/", "\\/")}


_SHAPE_PATTERN = re.compile("|".join(_SHAPES), re.I)


def _replace(match: re.Match[str]) -> str:
    groups = match.groupdict()
    kept = (groups["field"] and groups["field"] + groups["sep"]) or groups["scheme"] or groups["param"] or ""
    return kept + MARKER
