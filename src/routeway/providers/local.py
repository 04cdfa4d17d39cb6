"""``local`` kind: a GGUF model run by routeway itself (llama.cpp in a worker process of its own, see
local_worker.py and local_engine.py), answering in the OpenAI shape like any upstream.

Usage comes from the model's own tokenizer (the prompt as the template rendered it, the tokens
generated), never estimated. A worker that dies mid-answer fails the request as an upstream error and
bills nothing: in a stream the adapter reports zero usage before the error, so the exchange does not
estimate what was relayed (the operator's engine broke, not the client's request)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from routeway.catalog import Endpoint
from routeway.config import ConfigError, ProviderConfig
from routeway.providers.base import UpstreamError
from routeway.providers.local_worker import Job, LocalWorker
from routeway.providers.redact import Redactor

# the engine's reasons, in OpenAI's words; "cancelled" never reaches a client (it has gone)
_FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}


class LocalCall:
    __slots__ = ("worker", "job", "upstream_status", "id", "idle", "model")

    def __init__(self, worker: LocalWorker, job: Job, idle: float, model: str) -> None:
        self.worker, self.job, self.idle, self.model = worker, job, idle, model
        self.upstream_status = 200
        self.id = f"chatcmpl-{uuid.uuid4().hex}"

    async def _messages(self) -> AsyncIterator[dict[str, Any]]:
        """The worker's messages for this request until its end. Between two tokens a silence longer than
        the idle timeout (a hung engine) fails the request and restarts the worker; before the first, the
        queue and the prompt's evaluation take what they take, within the exchange's own first-byte
        timeout and routing deadline (which cancel the call, see ``LocalWorker.cancel``)."""
        answering = False
        while True:
            try:
                message = await asyncio.wait_for(self.job.inbox.get(), self.idle if answering else None)
            except TimeoutError:
                self.worker.kill_hung(self.job)
                raise UpstreamError(408, f"the local engine produced nothing for {self.idle:g} s") from None
            answering = True
            kind = message["t"]
            if kind in ("error", "died"):
                status = message["status"]
                raise UpstreamError(status, message["message"], upstream_status=status, retryable=status != 400)
            yield message
            if kind == "end":
                return

    async def json(self) -> dict[str, Any]:
        parts: list[str] = []
        async for message in self._messages():
            if message["t"] == "delta":
                parts.append(message["text"])
            else:
                return {"id": self.id, "object": "chat.completion", "created": int(time.time()), "model": self.model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                                     "finish_reason": _FINISH.get(message["finish"], message["finish"])}],
                        "usage": _usage(message)}
        raise UpstreamError(502, "the local engine ended without an answer")

    def events(self) -> AsyncIterator[dict[str, Any]]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[dict[str, Any]]:
        first = True
        try:
            async for message in self._messages():
                if message["t"] == "delta":
                    delta = {"role": "assistant", "content": message["text"]} if first else {"content": message["text"]}
                    first = False
                    yield {"id": self.id, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                else:
                    finish = _FINISH.get(message["finish"], message["finish"])
                    yield {"id": self.id, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
                    yield {"id": self.id, "choices": [], "usage": _usage(message)}
        except UpstreamError:
            if not first:  # text went out already: bill nothing for a broken answer (module docstring)
                yield {"id": self.id, "choices": [], "usage": {"prompt_tokens": 0, "completion_tokens": 0}}
            raise

    def close(self) -> None:
        """Cancellation: out of the queue, or the worker stops before its next token."""
        self.worker.cancel(self.job)


def _usage(end: dict[str, Any]) -> dict[str, int]:
    prompt, completion = end["prompt_tokens"], end["completion_tokens"]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class LocalModel:
    """The adapter: one worker per local provider, started with the server and stopped with it."""

    def __init__(self, provider: ProviderConfig, client: object = None, env: Mapping[str, str] | None = None,
                 redact: Redactor | None = None) -> None:
        if provider.local is None:
            raise ConfigError(f"provider '{provider.name}': kind 'local' needs model_path")
        self.provider = provider
        self.worker = LocalWorker(provider.name, provider.local)

    async def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()

    async def open(self, endpoint: Endpoint, body: dict[str, Any], stream: bool,
                   client_headers: Mapping[str, str] | None = None) -> LocalCall:
        job = self.worker.submit(body)  # a full queue raises the 429 here, before anything is sent
        return LocalCall(self.worker, job, self.provider.timeouts.idle, endpoint.upstream_model)
