"""``openai`` kind: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, TGI, LM Studio,
OpenAI, Together, OpenRouter itself)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec

from routeway.catalog import Endpoint
from routeway.config import ConfigError, ProviderConfig
from routeway.providers.base import RAW_SCAN, UpstreamError
from routeway.providers.http1 import (
    BodyTooLarge,
    ClientError,
    ConnectFailed,
    Pool,
    ReadTimeout,
    Response,
    Target,
    header_block,
)
from routeway.providers.propagate import UPSTREAM_HEADERS
from routeway.providers.redact import Redactor, provider_secrets

_decode = msgspec.json.decode
_encoder = msgspec.json.Encoder()
try:
    USER_AGENT = f"routeway/{version('routeway')}"
except PackageNotFoundError:  # running from a source tree that was never installed
    USER_AGENT = "routeway"
MAX_EVENT_BYTES = 8 * 1024 * 1024  # one SSE line; engines send lines of a few hundred bytes
ERROR_BODY_LIMIT = 64 * 1024  # an error answer's body: only its first RAW_SCAN characters are ever looked at


def map_status(upstream: int) -> int:
    """OpenRouter's mapping: client-side faults pass through, upstream faults become 502."""
    if upstream in (400, 404, 413, 422):
        return upstream
    if upstream in (408, 429):
        return upstream
    return 502  # 401/403 mean our upstream credentials are wrong: not the client's fault


class OpenAICall:
    """One upstream answer. Every ``UpstreamError`` carrying the upstream's words leaves it redacted."""

    __slots__ = ("response", "upstream_status", "idle", "redact")

    def __init__(self, response: Response, idle: float, redact: Redactor) -> None:
        self.response = response
        self.upstream_status = response.status
        self.idle = idle
        self.redact = redact

    async def json(self) -> dict[str, Any]:
        try:
            return self._answer(await self._read_json())
        except UpstreamError as error:
            raise error.redacted(self.redact) from None

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream's JSON answer in the OpenAI shape."""
        if "choices" not in body:
            raise UpstreamError(502, "upstream returned JSON without choices", raw=str(body)[:RAW_SCAN])
        return body

    async def _read_json(self) -> dict[str, Any]:
        try:
            raw = await self.response.read()
        except ReadTimeout as exc:
            raise UpstreamError(408, f"upstream did not finish its answer in time: {exc}") from None
        except BodyTooLarge as exc:  # the tokens are spent upstream: another endpoint would spend them again
            raise UpstreamError(502, f"{exc} (the provider's max_answer_bytes)", retryable=False) from None
        except ClientError as exc:
            raise UpstreamError(502, f"upstream connection failed while reading the answer: {exc}") from None
        finally:
            self.close()
        try:
            body = _decode(raw)
        except msgspec.DecodeError:
            raise UpstreamError(502, "upstream returned a body that is not JSON",
                                raw=raw[:RAW_SCAN].decode("utf-8", "replace")) from None
        if not isinstance(body, dict):
            raise UpstreamError(502, "upstream returned JSON that is not an object",
                                raw=raw[:RAW_SCAN].decode("utf-8", "replace"))
        return body

    def events(self) -> AsyncIterator[dict[str, Any]]:
        return self._sse()

    async def _sse(self) -> AsyncIterator[dict[str, Any]]:
        """The ``data:`` events of an SSE stream, decoded; ends at ``[DONE]``."""
        response, idle = self.response, self.idle
        pending: list[bytes] = []  # a line split across reads, in pieces (joined once, when it ends)
        pending_bytes = 0
        while True:
            try:
                chunk = await response.read_some(idle)
            except ReadTimeout as exc:
                raise UpstreamError(408, f"upstream sent nothing for {idle:g} s mid-stream"
                                    if not exc.total else f"upstream stream ran out of time: {exc}") from None
            except BodyTooLarge as exc:
                raise UpstreamError(502, f"{exc} (the provider's max_stream_bytes)") from None
            except ClientError as exc:
                raise UpstreamError(502, f"upstream connection failed mid-stream: {exc}") from None
            if not chunk:
                lines, pending = [b"".join(pending)], []
            elif b"\n" not in chunk:
                pending.append(chunk)  # no line ends here: no re-join of a long line on every read
                pending_bytes += len(chunk)
                if pending_bytes > MAX_EVENT_BYTES:
                    raise UpstreamError(502, f"upstream sent a stream line longer than {MAX_EVENT_BYTES:,} bytes")
                continue
            else:
                lines = chunk.split(b"\n")
                if pending:
                    lines[0] = b"".join(pending) + lines[0]
                pending = [lines.pop()]
                pending_bytes = len(pending[0])
            for line in lines:
                if not line.startswith(b"data:"):
                    continue  # blank separators, SSE comments (": OPENROUTER PROCESSING"), event: lines
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    event = _decode(data)
                except msgspec.DecodeError:
                    raise UpstreamError(502, "upstream sent a stream event that is not JSON",
                                        raw=data[:RAW_SCAN].decode("utf-8", "replace")).redacted(self.redact) from None
                if not isinstance(event, dict):
                    raise UpstreamError(502, "upstream sent a stream event that is not a JSON object")
                yield event
            if not chunk:
                raise UpstreamError(502, "upstream stream ended without [DONE]")

    def close(self) -> None:
        self.response.close()


class CompletionCall(OpenAICall):
    """A text completion (``/completions``) read as chat: each choice's ``text`` becomes the content of its
    ``delta`` (streamed) or ``message`` (whole), so the exchange core relays it as it relays chat; the
    text completions renderer (api/completions_render.py) writes it back as ``text``."""

    __slots__ = ()

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        body = super()._answer(body)
        for choice in _choices(body):
            choice["message"] = {"role": "assistant", "content": choice.pop("text", None)}
        return body

    async def _sse(self) -> AsyncIterator[dict[str, Any]]:
        async for event in super()._sse():
            for choice in _choices(event):
                choice["delta"] = {"content": choice.pop("text", None)}
            yield event


def _choices(body: dict[str, Any]) -> list[dict[str, Any]]:
    choices = body.get("choices")
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, dict) and isinstance(c.get("text", ""), str)]


class OpenAICompatible:
    call_type: type[OpenAICall] = OpenAICall
    path = "/chat/completions"

    def __init__(self, provider: ProviderConfig, client: Pool, env: Mapping[str, str],
                 redact: Redactor | None = None) -> None:
        self.provider = provider
        self.client = client
        # the app passes one built from every configured secret; alone, an adapter hides at least its own
        self.redact = redact or Redactor(provider_secrets(provider, env))
        try:
            self.target = Target.parse(provider.base_url + self.path)  # parsed once, not per request
            self.completions_target = Target.parse(provider.base_url + "/completions")
            self.embeddings_target = Target.parse(provider.base_url + "/embeddings")
            self.header_fields = self.request_headers(provider, provider.api_key(env))
            self.headers = header_block(self.header_fields)
        except ValueError as exc:
            raise ConfigError(f"provider '{provider.name}': {exc}") from None

    def request_headers(self, provider: ProviderConfig, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "user-agent": USER_AGENT, **provider.headers}
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def start(self) -> None:
        """Nothing to start: connections open on demand in the shared pool."""

    async def stop(self) -> None:
        """Nothing to stop: the pool is closed with the server."""

    # client request headers this adapter's upstream protocol defines, passed on as the client sent them
    forwarded_headers: tuple[str, ...] = ()

    async def open(self, endpoint: Endpoint, body: dict[str, Any], stream: bool,
                   client_headers: Mapping[str, str] | None = None) -> OpenAICall:
        try:
            # the fixed block as is when this adapter forwards no client header (two calls less per request)
            headers = self._headers_for(client_headers) if self.forwarded_headers else self.headers
            return await self._open(endpoint, body, stream, headers)
        except UpstreamError as error:
            raise error.redacted(self.redact) from None

    async def open_completion(self, endpoint: Endpoint, body: dict[str, Any], stream: bool) -> OpenAICall:
        """A text completion: ``body`` carries ``prompt``; the call yields it in chat's shape (CompletionCall)."""
        try:
            return await self._open(endpoint, body, stream, self.headers, self.completions_target, CompletionCall)
        except UpstreamError as error:
            raise error.redacted(self.redact) from None

    async def embed(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream's ``/embeddings`` answer: an object with a ``data`` list (checked by the caller)."""
        try:
            call = await self._open(endpoint, body, False, self.headers, self.embeddings_target, OpenAICall)
            body = await call._read_json()
        except UpstreamError as error:
            raise error.redacted(self.redact) from None
        if not isinstance(body.get("data"), list):
            raise UpstreamError(502, "upstream returned embeddings without a data list").redacted(self.redact)
        return body


    def _headers_for(self, client_headers: Mapping[str, str] | None) -> bytes:
        """The fixed header block, with the client's forwarded headers in place of the defaults they name."""
        forwarded = {name: client_headers[name] for name in self.forwarded_headers
                     if client_headers and client_headers.get(name)}
        if not forwarded:
            return self.headers
        try:
            return header_block({**self.header_fields, **forwarded})
        except ValueError:  # a value HTTP does not allow: the defaults go instead
            return self.headers

    async def _open(self, endpoint: Endpoint, body: dict[str, Any], stream: bool, headers: bytes,
                    target: Target | None = None, call_type: type[OpenAICall] | None = None) -> OpenAICall:
        t = self.provider.timeouts
        payload = _encoder.encode(self.translate(endpoint, body) if target is None else body)
        try:
            response = await self.client.post(
                target or self.target, headers + UPSTREAM_HEADERS.get(), payload, connect_timeout=t.connect,
                head_timeout=t.first_byte, total_timeout=t.total,
                body_limit=self.provider.max_stream_bytes if stream else self.provider.max_answer_bytes)
        except ReadTimeout:
            raise UpstreamError(408, f"upstream did not answer within {t.first_byte:g} s") from None
        except ConnectFailed as exc:
            raise UpstreamError(502, f"cannot connect to upstream {self.provider.base_url}: {exc}") from None
        except ClientError as exc:
            raise UpstreamError(502, f"upstream request failed: {exc}") from None
        if response.status != 200:
            response.limit = min(response.limit, ERROR_BODY_LIMIT)
            try:
                raw = (await response.read())[:RAW_SCAN].decode("utf-8", "replace")
            except ClientError:
                raw = ""
            finally:
                response.close()
            raise UpstreamError(map_status(response.status), _error_message(raw, response.status),
                                upstream_status=response.status, retry_after=response.headers.get("retry-after"),
                                raw=raw, retryable=response.status in (408, 429) or response.status >= 500)
        content_type = response.headers.get("content-type", "")
        expected = "text/event-stream" if stream else "json"
        if expected not in content_type:
            response.close()
            raise UpstreamError(502, f"upstream answered with content type {content_type!r}, expected {expected}")
        return (call_type or self.call_type)(response, t.idle, self.redact)

    def translate(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream's wire form of an OpenAI-shaped body (identity here)."""
        return body


def _error_message(raw: str, status: int) -> str:
    try:
        body = _decode(raw)
        message = body["error"]["message"] if isinstance(body.get("error"), dict) else body.get("error")
        if message:
            return f"Provider returned error ({status}): {message}"
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):  # no agreed shape: use the status
        pass
    return f"Provider returned error ({status})"
