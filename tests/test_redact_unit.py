"""The redaction every upstream error passes (providers/redact.py): configured secrets in any encoding,
credential shapes, and the cut to RAW_LIMIT made only after redaction."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from routeway.config import load_settings
from routeway.providers.base import RAW_LIMIT, UpstreamError
from routeway.providers.redact import MARKER, Redactor

KEY = "Zq9+/Ab3-key-0123456789=="


def test_configured_secrets_in_every_encoding_and_case() -> None:
    redact = Redactor([KEY])
    for form in (KEY, quote(KEY, safe=""), KEY.replace("/", "\\/"), KEY.upper(), f'"{KEY}"'):
        assert KEY.lower()[:8] not in redact(f"seen: {form}!").lower(), form
    assert redact(f"a {KEY} b") == f"a {MARKER} b"


def test_a_secret_goes_whole_even_inside_a_credential_shape() -> None:
    odd = "abc123!def456"  # a character the bearer shape stops at: the literal must still take it all
    assert Redactor([odd])(f"Bearer {odd} x") == f"Bearer {MARKER} x"


def test_credential_shapes_without_configuration() -> None:
    redact = Redactor([])
    assert redact("Authorization: Bearer abc123def456ghi") == f"Authorization: {MARKER}"
    assert redact('{"authorization": "Basic dXNlcjpwYXNz"}') == f'{{"authorization": "{MARKER}"}}'
    assert redact("x-api-key: anything-at-all") == f"x-api-key: {MARKER}"
    assert redact("api_key=abc&b=1") == f"api_key={MARKER}&b=1"
    assert redact("used bearer eyJhbGciOiJIUzI1NiJ9.x.y today") == f"used bearer {MARKER} today"
    assert redact("key sk-proj-AbCdEf123456 was wrong") == f"key {MARKER} was wrong"
    assert redact("GET https://x.example/v1?key=AIzaSy123&alt=json") == f"GET https://x.example/v1?key={MARKER}&alt=json"


def test_ordinary_words_survive() -> None:
    redact = Redactor(["tiny"])  # shorter than MIN_SECRET: not a credential, would blank out words
    for text in ("Bearer token required", "Invalid api key", "tiny model", "maximum context length is 8192 tokens",
                 "Provider returned error (500): engine exploded"):
        assert redact(text) == text


def test_secrets_come_from_every_provider_key_header_and_the_operator(tmp_path: Path) -> None:
    config = tmp_path / "routeway.toml"
    config.write_text('[[providers]]\nname = "a"\nkind = "openai"\nbase_url = "http://a"\napi_key_env = "A_KEY"\n'
                      '[[providers]]\nname = "b"\nkind = "openai"\nbase_url = "http://b"\n'
                      'headers = { "X-Api-Key" = "header-secret-1", "Api-Key" = "header-secret-2",'
                      ' "Proxy-Authorization" = "Basic cHJveHk6c2VjcmV0", "X-Title" = "routeway team" }\n')
    settings = load_settings(config, {"A_KEY": "provider-key-a\n", "ROUTEWAY_ADMIN_KEY": "rw-admin-operator",
                                      "OPENAI_API_KEY": "env-openai-key"})
    redact = Redactor.from_settings(settings)
    text = "provider-key-a header-secret-1 header-secret-2 cHJveHk6c2VjcmV0 rw-admin-operator env-openai-key"
    assert redact(text) == " ".join([MARKER] * 6)
    assert redact("X-Title: routeway team") == "X-Title: routeway team"  # not a secret header


def test_raw_is_cut_only_after_redaction() -> None:
    secret = "provider-key-0123456789abcdef"
    error = UpstreamError(502, f"failed {secret}", raw="x" * (RAW_LIMIT - 10) + secret + "y" * 5000,
                          retry_after=secret).redacted(Redactor([secret]))
    assert error.raw is not None and len(error.raw) == RAW_LIMIT and "provider-" not in error.raw
    assert error.message == f"failed {MARKER}" and str(error) == error.message and error.retry_after == MARKER
