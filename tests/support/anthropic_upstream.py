"""A real Anthropic Messages API server on loopback (aiohttp), for the ``anthropic`` adapter's tests.

Models: ``claude-echo`` thinks (when asked) then answers "echo: <last user text>"; ``claude-tool`` calls
the request's first tool with {"city": "Paris"}; ``claude-agent`` does so too unless the last user turn
carries a tool_result, and then answers "done: <its content>" (an agent's tool loop ends);
``claude-overloaded`` answers 529; ``claude-garbled-usage`` answers as ``claude-echo`` with counts that
are not integers ("10", 7.5), and a stream whose message_delta usage is not an object; ``claude-echo-auth``
(any key) repeats the request's ``x-api-key`` in its error: a 500 body, or an ``error`` event mid-stream
after the first text (as a proxy in front of Anthropic might). Requests and their headers are kept in
``requests`` / ``headers``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web

from tests.support.loopback import LoopbackServer

# The provider entry reads its key from this variable; the mock takes any key but the adapter needs one.
KEY_ENV = {"TEST_ANTHROPIC_KEY": "test-anthropic-key"}
PARAMETERS = ("max_tokens", "tools", "tool_choice", "reasoning", "temperature")


def anthropic_config(base_url: str, endpoints: Iterable[tuple[str, str]], parameters: Sequence[str] = PARAMETERS) -> str:
    """routeway.toml text: an ``anthropic`` provider at ``base_url`` with an endpoint for each (model, upstream
    model); a ``test/`` model, not in the catalogue, gets a model entry priced like Claude Sonnet ($3 / $15)."""
    lines = [f'[[providers]]\nname = "anthropic"\ndisplay_name = "Anthropic"\nkind = "anthropic"\n'
             f'base_url = "{base_url}"\napi_key_env = "TEST_ANTHROPIC_KEY"\n']
    for model, upstream_model in endpoints:
        if model.startswith("test/"):
            lines.append(f'[[models]]\nid = "{model}"\ncontext_length = 200000\nprompt_price = "3"\n'
                         f'completion_price = "15"\nsupported_parameters = {json.dumps(list(parameters))}\n')
        lines.append(f'[[endpoints]]\nmodel = "{model}"\nprovider = "anthropic"\nupstream_model = "{upstream_model}"\n')
    return "\n".join(lines)


class MockAnthropic(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    async def _echo_auth(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        error = {"type": "error", "error": {"type": "api_error",
                                            "message": f"proxy saw x-api-key {request.headers.get('x-api-key')}"}}
        if not body.get("stream"):
            return web.json_response(error, status=500)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        start = {"type": "message_start", "message": {"id": "msg_02", "type": "message", "role": "assistant",
                                                      "content": [], "model": body["model"], "usage": {"input_tokens": 3}}}
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial"}}
        for name, data in (("message_start", start), ("content_block_start", {
                "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", delta), ("error", error)):
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        return response

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if body["model"] == "claude-echo-auth":
            return await self._echo_auth(request, body)
        if request.headers.get("x-api-key") != "test-anthropic-key" or "anthropic-version" not in request.headers:
            return web.json_response({"type": "error", "error": {"type": "authentication_error", "message": "bad key"}},
                                     status=401)
        if body["model"] == "claude-overloaded":
            return web.json_response({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                                     status=529)
        blocks: list[dict[str, Any]] = []
        if body.get("thinking", {}).get("type") == "enabled":
            blocks.append({"type": "thinking", "thinking": "Let me think.", "signature": "sig-abc123"})
        last = body["messages"][-1]["content"]
        results = [b for b in last if b.get("type") == "tool_result"] if isinstance(last, list) else []
        if body["model"] == "claude-tool" or (body["model"] == "claude-agent" and not results):
            blocks.append({"type": "tool_use", "id": "toolu_01", "name": body["tools"][0]["name"], "input": {"city": "Paris"}})
            stop = "tool_use"
        elif body["model"] == "claude-agent":
            blocks.append({"type": "text", "text": "done: " + " ".join(str(b.get("content")) for b in results)})
            stop = "end_turn"
        else:
            text = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last if b.get("type") == "text")
            blocks.append({"type": "text", "text": f"echo: {text}"})
            stop = "end_turn"
        usage: dict[str, Any] = {"input_tokens": 10, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2,
                                 "output_tokens": 7}
        garbled = body["model"] == "claude-garbled-usage"
        if garbled:
            usage.update(input_tokens="10", output_tokens=7.5)
        if not body.get("stream"):
            return web.json_response({"id": "msg_01", "type": "message", "role": "assistant", "model": body["model"],
                                      "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode())

        await event("message_start", {"message": {"id": "msg_01", "type": "message", "role": "assistant", "content": [],
                                                  "model": body["model"], "usage": {**usage, "output_tokens": 1}}})
        await event("ping", {})
        for index, block in enumerate(blocks):
            if block["type"] == "thinking":
                await event("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": ""}})
                for piece in ("Let me ", "think."):
                    await event("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": piece}})
                await event("content_block_delta", {"index": index, "delta": {"type": "signature_delta", "signature": "sig-abc123"}})
            elif block["type"] == "text":
                await event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                text = block["text"]
                for i in range(0, len(text), 4):
                    await event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": text[i:i + 4]}})
            else:
                await event("content_block_start", {"index": index, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                for piece in ('{"city"', ': "Par', 'is"}'):
                    await event("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})
            await event("content_block_stop", {"index": index})
        await event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": "lots" if garbled else {"output_tokens": 7}})
        await event("message_stop", {})
        return response
