"""A real OpenAI-protocol HTTP server on loopback, with behaviours chosen by the request's ``model``.

A ``#suffix`` on the model name keeps the behaviour but makes a distinct endpoint, so tests that
trip health or breakers do not disturb each other. It runs in its own thread and event loop so tests can read what it saw (``requests``, ``closed_early``)
directly. Behaviours:
  echo            answers "echo: <last user text>" (streamed word by word), with usage
  no-usage        as echo, but never reports usage
  reasoning       sends ``reasoning_content`` (or the field named after ``#``) then content; its 3 reasoning
                  tokens are counted within completion_tokens
  slow-stream     200 chunks "tok " 20 ms apart; notes in ``closed_early`` how many it had written when the
                  client closed the connection (the stream's own clock, for event-order assertions)
  fail-500        HTTP 500
  rate-limited    HTTP 429 with Retry-After: 7
  bad-request     HTTP 400 with an OpenAI error body
  not-json        HTTP 200 with a body that is not JSON
  midstream-error two chunks, then the connection is cut
  hang            never answers (until the client gives up)
  slow            as echo, after 300 ms
  late-stream     stream headers at once, the first token after 1.2 s
  reset           the connection is dropped without an answer
  wrong-type      HTTP 200 with content type text/html
  stall-first     stream headers, then nothing (no first token)
  bad-sse         stream headers, then an event that is not JSON
  truncated-early stream headers, then the stream ends cleanly with no event and no [DONE]
  truncated       two tokens, then the stream ends cleanly without [DONE]
  hang-midstream  two tokens, then silence
  trickle         ten tokens 150 ms apart
  say             answers with the last user message verbatim (streamed in 3-character pieces)
  toggle          fails with 500 while ``toggle_failing`` is set, else behaves as echo
  huge-usage      as echo, but reports 10,000,000 prompt and completion tokens (a lying provider)
  negative-usage  as echo, but reports negative token counts
  garbled-usage   as echo, but reports counts that are not integers (2.5, "7", true)
  echo-auth       HTTP 500 whose error body repeats the request's Authorization header (as some proxies do)
  echo-auth-encoded  HTTP 500 repeating the Authorization header url-encoded and JSON-escaped (each slash backslash-escaped)
  echo-auth-json  HTTP 200 JSON without choices that repeats the Authorization header
  echo-auth-sse   stream headers, then an event that is not JSON and repeats the Authorization header
  odd-choice      two tokens, then a chunk whose ``choices`` entry is not an object (routeway's own code
                  trips over it after the first token: an internal error mid-stream)
  flood           a stream of 64 KiB content events, 256 MiB in all, as fast as the reader takes them
                  (then [DONE]); ``flood_sent`` holds the bytes each flood could write so far
  huge-answer     HTTP 200 JSON of 64 MiB (one long content string)

``POST /v1/completions`` (text completions) answers ``echo`` (" echo: <prompt>", streamed word by word, with
usage; ``logprobs`` echoed back per choice) and ``fail-500``. ``POST /v1/embeddings`` answers:
  embed           one vector per input, ``dimensions`` long (default 4): [input length, its index, 0.5, -1.0, …]
                  (float32-exact values), usage = words (or token ids) in the inputs
  embed-no-usage  as embed, without usage
  embed-short     one vector fewer than inputs (a malformed answer)
  fail-500        HTTP 500
The requests they received are in ``requests`` too.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from tests.support.loopback import LoopbackServer


class MockUpstream(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.closed_early: list[int] = []  # chunks a slow stream had written when its client cut it
        self.completed_streams = 0
        self.toggle_failing = False
        self.flood_sent: list[int] = []  # per flood stream: bytes written to the socket so far

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.request_headers.append(dict(request.headers))  # the two lists stay in step (tests zip them)
        behaviour = body["model"].split("#")[0]
        if behaviour != "echo":
            return web.json_response({"error": {"message": "engine exploded"}}, status=500)
        words = ["echo:", *str(body["prompt"]).split()]
        usage = {"prompt_tokens": len(str(body["prompt"]).split()), "completion_tokens": len(words)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        logprobs = {"tokens": words, "token_logprobs": [-0.5] * len(words)} if body.get("logprobs") else None
        if not body.get("stream"):
            return web.json_response({"id": "cmpl-up", "object": "text_completion", "created": 0, "model": "echo",
                                      "choices": [{"text": " " + " ".join(words), "index": 0, "logprobs": logprobs,
                                                   "finish_reason": "length"}], "usage": usage})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for word in words:
            await response.write(_sse({"id": "cmpl-up", "object": "text_completion", "created": 0, "model": "echo",
                                       "choices": [{"text": " " + word, "index": 0, "logprobs": None,
                                                    "finish_reason": None}]}))
        await response.write(_sse({"id": "cmpl-up", "object": "text_completion", "created": 0, "model": "echo",
                                   "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "length"}]}))
        if body.get("stream_options", {}).get("include_usage"):
            await response.write(_sse({"id": "cmpl-up", "object": "text_completion", "created": 0, "model": "echo",
                                       "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.request_headers.append(dict(request.headers))  # the two lists stay in step (tests zip them)
        behaviour = body["model"].split("#")[0]
        if behaviour not in ("embed", "embed-no-usage", "embed-short"):
            return web.json_response({"error": {"message": "engine exploded"}}, status=500)
        inputs = body["input"]
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        size = body.get("dimensions", 4)
        if size > 4096 or size * len(inputs) > 1_000_000:  # as an engine refuses what its model cannot produce
            return web.json_response({"error": {"message": f"dimensions {size} not supported"}}, status=400)
        data = [{"object": "embedding", "index": i,
                 "embedding": [float(len(item)), float(i), 0.5, -1.0, *([0.25] * (size - 4))][:size]}
                for i, item in enumerate(inputs)]
        if behaviour == "embed-short":
            data = data[:-1]
        answer: dict[str, Any] = {"object": "list", "data": data, "model": behaviour}
        if behaviour != "embed-no-usage":
            tokens = sum(len(i) if isinstance(i, list) else len(i.split()) for i in inputs)
            answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response(answer)

    # ---- protocol ----
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.request_headers.append(dict(request.headers))
        behaviour = body["model"].split("#")[0]  # "fail-500#a" behaves as fail-500 but is its own endpoint
        stream = bool(body.get("stream"))
        if behaviour == "toggle":
            if self.toggle_failing:
                return web.json_response({"error": {"message": "toggled off"}}, status=500)
            behaviour = "echo"
        if behaviour == "reset":
            request.transport.close()  # type: ignore[union-attr]
            return web.Response(status=500)
        if behaviour == "wrong-type":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if behaviour == "fail-500":
            return web.json_response({"error": {"message": "engine exploded"}}, status=500)
        if behaviour == "rate-limited":
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "7"})
        if behaviour == "bad-request":
            return web.json_response({"error": {"message": "prompt too long for this engine"}}, status=400)
        if behaviour == "echo-auth":
            seen = request.headers.get("Authorization", "")
            return web.json_response({"error": {"message": f"upstream proxy rejected credentials {seen}",
                                                "request_headers": {"authorization": seen}}}, status=500)
        if behaviour == "echo-auth-encoded":
            seen = request.headers.get("Authorization", "")
            escaped = seen.replace("/", "\\/")
            text = f'{{"error": {{"message": "denied: {quote(seen, safe="")}", "auth": "{escaped}"}}}}'
            return web.Response(text=text, status=500, content_type="application/json")
        if behaviour == "echo-auth-json":
            return web.json_response({"error": {"message": f"bad credentials {request.headers.get('Authorization')}"}})
        if behaviour == "echo-auth-sse":
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            await response.write(f"data: proxy error, credentials {request.headers.get('Authorization')}\n\n".encode())
            return response
        if behaviour == "huge-answer":
            content = b"x" * HUGE_ANSWER_BYTES
            return web.Response(body=b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "'
                                + content + b'"}, "finish_reason": "stop"}]}', content_type="application/json")
        if behaviour == "flood" and stream:
            return await self._flood(request)
        if behaviour == "not-json":
            return web.Response(text="<html>oops</html>", content_type="application/json")
        if behaviour == "hang":
            await asyncio.sleep(3600)
        if behaviour == "slow":
            await asyncio.sleep(0.3)
        text = _last_user_text(body["messages"])
        words = ["echo:", *text.split()]
        if behaviour == "say":
            words = [text[i:i + 3] for i in range(0, len(text), 3)]
        content = "".join(words) if behaviour == "say" else " ".join(words)
        prompt_tokens = sum(len(_text(m).split()) for m in body["messages"]) + 3
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": prompt_tokens + len(words)}
        usage.update(_LIES.get(behaviour, {}))
        if behaviour == "reasoning":
            reasoning = "think " * 3
            # reasoning tokens are part of completion_tokens, as OpenAI, vLLM and DeepSeek count them
            usage["completion_tokens"] += 3
            usage["total_tokens"] += 3
            usage["completion_tokens_details"] = {"reasoning_tokens": 3}
        else:
            reasoning = None
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            field = body["model"].split("#")[1] if "#" in body["model"] else "reasoning_content"
            if reasoning:
                message[field] = reasoning
            answer: dict[str, Any] = {"id": "up-1", "object": "chat.completion", "created": int(time.time()),
                                      "model": behaviour, "choices": [{"index": 0, "message": message,
                                                                       "finish_reason": "stop"}]}
            if behaviour != "no-usage":
                answer["usage"] = usage
            reply = web.json_response(answer)
            reply.set_cookie("upstream_session", "secret-of-whoever-came-first")
            return reply
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        if behaviour == "slow-stream":
            return await self._slow_stream(response)
        if behaviour == "stall-first":
            await asyncio.sleep(3600)
        if behaviour == "bad-sse":
            await response.write(b"data: {not json\n\n")
            return response
        if behaviour == "truncated-early":
            return response
        if behaviour in ("truncated", "hang-midstream", "trickle", "odd-choice"):
            count = 10 if behaviour == "trickle" else 2
            for i in range(count):
                await _send(response, {"content": f"t{i} "})
                if behaviour == "trickle":
                    await asyncio.sleep(0.15)
            if behaviour == "hang-midstream":
                await asyncio.sleep(3600)
            if behaviour == "odd-choice":
                await response.write(_sse({"id": "up-1", "object": "chat.completion.chunk", "choices": [42]}))
                await response.write(b"data: [DONE]\n\n")
            if behaviour == "trickle":
                await _send(response, {}, finish="stop")
                await response.write(b"data: [DONE]\n\n")
            return response
        if behaviour == "late-stream":
            await asyncio.sleep(1.2)
        if reasoning:
            field = body["model"].split("#")[1] if "#" in body["model"] else "reasoning_content"
            await _send(response, {field: reasoning})
        for i, word in enumerate(words):
            piece = word if i == 0 or behaviour == "say" else " " + word
            await _send(response, {"role": "assistant", "content": piece} if i == 0 else {"content": piece})
            if behaviour == "midstream-error" and i == 1:
                await asyncio.sleep(0.1)  # the engine dies a moment after its last token
                request.transport.close()  # type: ignore[union-attr]
                return response
        await _send(response, {}, finish="stop")
        if behaviour != "no-usage" and body.get("stream_options", {}).get("include_usage"):
            await response.write(_sse({"id": "up-1", "object": "chat.completion.chunk", "created": 0,
                                       "model": behaviour, "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        self.completed_streams += 1
        return response

    async def _flood(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        slot = len(self.flood_sent)
        self.flood_sent.append(0)
        try:
            while self.flood_sent[slot] < FLOOD_BYTES:
                await response.write(_FLOOD_EVENT)  # waits while the reader's socket is full
                self.flood_sent[slot] += len(_FLOOD_EVENT)
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    async def _slow_stream(self, response: web.StreamResponse) -> web.StreamResponse:
        written = 0
        try:
            for _ in range(200):
                await _send(response, {"content": "tok "})
                written += 1
                await asyncio.sleep(0.02)
            await _send(response, {}, finish="length")
            await response.write(b"data: [DONE]\n\n")
            self.completed_streams += 1
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            self.closed_early.append(written)
            raise
        return response


HUGE_ANSWER_BYTES = 64 * 1024 * 1024
FLOOD_BYTES = 256 * 1024 * 1024
_FLOOD_EVENT = b'data: {"id": "up-1", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [' \
               b'{"index": 0, "delta": {"content": "' + b"x" * (64 * 1024) + b'"}, "finish_reason": null}]}\n\n'

_LIES: dict[str, dict[str, Any]] = {
    "huge-usage": {"prompt_tokens": 10_000_000, "completion_tokens": 10_000_000, "total_tokens": 20_000_000},
    "negative-usage": {"prompt_tokens": -1_000_000, "completion_tokens": -100_000_000, "total_tokens": -101_000_000},
    "garbled-usage": {"prompt_tokens": 2.5, "completion_tokens": "7", "total_tokens": True},
}


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _send(response: web.StreamResponse, delta: dict[str, Any], finish: str | None = None) -> None:
    await response.write(_sse({"id": "up-1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content)
    return content


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message)
    return ""
