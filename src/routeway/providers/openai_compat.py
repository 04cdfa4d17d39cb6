"""``openai`` kind: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, TGI, LM Studio,
OpenAI, Together, OpenRouter itself)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Mapping

import aiohttp
import msgspec
from yarl import URL

from routeway.catalog import Endpoint
from routeway.config import ProviderConfig
from routeway.providers.base import UpstreamError

_decode = msgspec.json.decode
_encoder = msgspec.json.Encoder()


def map_status(upstream: int) -> int:
    """OpenRouter's mapping: client-side faults pass through, upstream faults become 502."""
    if upstream in (400, 404, 413, 422):
        return upstream
    if upstream in (408, 429):
        return upstream
    return 502  # 401/403 mean our upstream credentials are wrong: not the client's fault


class OpenAICall:
    __slots__ = ("response", "upstream_status", "idle", "_closed")

    def __init__(self, response: aiohttp.ClientResponse, idle: float) -> None:
        self.response = response
        self.upstream_status = response.status
        self.idle = idle
        self._closed = False

    async def json(self) -> dict[str, Any]:
        body = await self._read_json()
        if "choices" not in body:
            raise UpstreamError(502, "upstream returned JSON without choices", raw=str(body)[:500])
        return body

    async def _read_json(self) -> dict[str, Any]:
        try:
            raw = await self.response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise UpstreamError(502, f"upstream connection failed while reading the answer: {exc!r}") from None
        finally:
            self.close()
        try:
            body = _decode(raw)
        except msgspec.DecodeError:
            raise UpstreamError(502, "upstream returned a body that is not JSON", raw=raw[:500].decode("utf-8", "replace")) from None
        if not isinstance(body, dict):
            raise UpstreamError(502, "upstream returned JSON that is not an object", raw=raw[:500].decode("utf-8", "replace"))
        return body

    def events(self) -> AsyncIterator[dict[str, Any]]:
        return self._sse()

    async def _sse(self) -> AsyncIterator[dict[str, Any]]:
        """The ``data:`` events of an SSE stream, decoded; ends at ``[DONE]``."""
        content = self.response.content
        idle = self.idle
        while True:
            try:
                async with asyncio.timeout(idle):
                    line = await content.readline()
            except TimeoutError:
                raise UpstreamError(408, f"upstream sent nothing for {idle:g} s mid-stream") from None
            except aiohttp.ClientError as exc:
                raise UpstreamError(502, f"upstream connection failed mid-stream: {exc!r}") from None
            if not line:
                if content.at_eof():
                    raise UpstreamError(502, "upstream stream ended without [DONE]")
                continue
            if not line.startswith(b"data:"):
                continue  # blank separators, SSE comments (": OPENROUTER PROCESSING"), event: lines
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            try:
                event = _decode(data)
            except msgspec.DecodeError:
                raise UpstreamError(502, "upstream sent a stream event that is not JSON",
                                    raw=data[:500].decode("utf-8", "replace")) from None
            if not isinstance(event, dict):
                raise UpstreamError(502, "upstream sent a stream event that is not a JSON object")
            yield event

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.response.close()


class OpenAICompatible:
    call_type: type[OpenAICall] = OpenAICall

    def __init__(self, provider: ProviderConfig, session: aiohttp.ClientSession, env: Mapping[str, str]) -> None:
        self.provider = provider
        self.session = session
        self.url = URL(provider.base_url + "/chat/completions")  # parsed once, not per request
        self.headers = {"content-type": "application/json", **provider.headers}
        key = provider.api_key(env)
        if key:
            self.headers["authorization"] = f"Bearer {key}"
        t = provider.timeouts
        self.timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect)

    async def open(self, endpoint: Endpoint, body: dict[str, Any], stream: bool) -> OpenAICall:
        t = self.provider.timeouts
        payload = _encoder.encode(self.translate(endpoint, body))
        try:
            async with asyncio.timeout(t.first_byte):  # not aiohttp's sock_read: that would also bound stream gaps
                response = await self.session.post(self.url, data=payload, headers=self.headers, timeout=self.timeout)
        except TimeoutError:
            raise UpstreamError(408, f"upstream did not answer within {t.first_byte:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(502, f"cannot connect to upstream {self.provider.base_url}: {exc.os_error}") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(502, f"upstream request failed: {exc!r}") from None
        if response.status != 200:
            try:
                raw = (await response.read())[:2000].decode("utf-8", "replace")
            except (aiohttp.ClientError, asyncio.TimeoutError):
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
        return self.call_type(response, t.idle)

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
