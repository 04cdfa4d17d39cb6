"""``anthropic`` kind: Anthropic's Messages API, translated both ways so the rest of routeway sees the
OpenAI shape: system prompt, images, tools and ``tool_use``/``tool_result``, thinking blocks with their
signatures (from and back to ``reasoning_details``), stop reasons, usage with cache tokens, and the
streaming event sequence."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from routeway.catalog import Endpoint
from routeway.config import ProviderConfig
from routeway.dialects.anthropic import DEFAULT_MAX_TOKENS
from routeway.providers.base import RAW_SCAN, UpstreamError
from routeway.providers.openai_compat import USER_AGENT, OpenAICall, OpenAICompatible
from routeway.transform.normalize import assistant_message

VERSION = "2023-06-01"
FORMAT = "anthropic-claude-v1"
_PASSED = ("temperature", "top_p", "top_k", "metadata", "thinking")


def to_anthropic(body: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    system: list[str] = []
    system_blocks: list[dict[str, Any]] = []  # the same, part by part, for when a part carries cache_control
    messages: list[dict[str, Any]] = []
    for message in body["messages"]:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
            system_blocks += [_cached({"type": "text", "text": _text([part])}, part)
                              for part in _parts(message.get("content")) if _text([part])]
            continue
        if role == "tool":
            block = _cached({"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                             "content": _text(message.get("content"))}, *_parts(message.get("content")))
            _append(messages, "user", [block])
            continue
        blocks: list[dict[str, Any]] = []
        if role == "assistant":
            blocks += _thinking_blocks(message.get("reasoning_details") or [])
        blocks += _content_blocks(message.get("content"))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except ValueError:
                arguments = {}
            blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
        _append(messages, "assistant" if role == "assistant" else "user", blocks)
    out: dict[str, Any] = {
        "model": body["model"], "messages": messages,
        "max_tokens": body.get("max_tokens") or endpoint.max_output or DEFAULT_MAX_TOKENS,
        "stream": body.get("stream", False),
    }
    if any("cache_control" in block for block in system_blocks):  # a breakpoint needs the block form
        out["system"] = system_blocks
    elif system:
        out["system"] = "\n\n".join(system)
    for name in _PASSED:
        if name in body:
            out[name] = body[name]
    if "stop" in body:
        out["stop_sequences"] = [body["stop"]] if isinstance(body["stop"], str) else body["stop"]
    if body.get("tools"):
        out["tools"] = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
                         "input_schema": t["function"].get("parameters") or {"type": "object"}} for t in body["tools"]]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice:
            out["tool_choice"] = choice
    return out


def _parts(content: Any) -> list[Any]:
    """Content as a list of parts: a string is one text part."""
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if isinstance(content, str) else []


def _cached(block: dict[str, Any], *parts: Any) -> dict[str, Any]:
    """A content part's ``cache_control`` (checked by wire/chat.py) on the Anthropic block made of it:
    the client's prompt-cache breakpoint reaches Anthropic where the client put it."""
    for part in parts:
        if isinstance(part, dict) and "cache_control" in part:
            block["cache_control"] = part["cache_control"]
    return block


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content:
        if part.get("type") == "text":
            blocks.append(_cached({"type": "text", "text": part.get("text", "")}, part))
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:"):
                header, _, data = url.partition(",")
                blocks.append(_cached({"type": "image", "source": {"type": "base64", "data": data,
                                                                   "media_type": header[5:].split(";")[0]}}, part))
            else:
                blocks.append(_cached({"type": "image", "source": {"type": "url", "url": url}}, part))
        elif part.get("type") == "file":  # OpenRouter's file part: a PDF as a data URL or a URL
            data = str((part.get("file") or {}).get("file_data", ""))
            if data.startswith("data:"):
                header, _, payload = data.partition(",")
                blocks.append(_cached({"type": "document", "source": {"type": "base64", "data": payload,
                                                                      "media_type": header[5:].split(";")[0]}}, part))
            elif data:
                blocks.append(_cached({"type": "document", "source": {"type": "url", "url": data}}, part))
    return blocks


def _thinking_blocks(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reasoning details sent back by the client go back as Anthropic wrote them: text with its signature."""
    blocks = []
    for detail in details:
        if detail.get("type") == "reasoning.text" and detail.get("signature"):
            blocks.append({"type": "thinking", "thinking": detail.get("text", ""), "signature": detail["signature"]})
        elif detail.get("type") == "reasoning.encrypted":
            blocks.append({"type": "redacted_thinking", "data": detail.get("data", "")})
    return blocks


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if messages and messages[-1]["role"] == role:  # Anthropic wants user and assistant turns to alternate
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice(choice: Any, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None and parallel is None:
        return None
    if isinstance(choice, dict):
        result: dict[str, Any] = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        result = {"type": {"required": "any", "none": "none"}.get(choice or "auto", "auto")}
    if parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def usage_of(usage: Any) -> Any:
    """Anthropic's usage in OpenAI's shape. It is untrusted: a value that is not an object, or a count
    that is not an integer, is passed on as it is for the usage parser (transform/usage.py) to reject,
    never added up here."""
    if not isinstance(usage, Mapping):
        return usage
    cached = usage.get("cache_read_input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    parts = (usage.get("input_tokens") or 0, cached, written)
    odd = [part for part in parts if type(part) is not int]
    prompt = odd[0] if odd else sum(parts)
    completion = usage.get("output_tokens") or 0
    total = prompt + completion if type(prompt) is int and type(completion) is int else None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written}}


def from_anthropic(answer: dict[str, Any]) -> dict[str, Any]:
    content: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in answer.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            content.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            details.append({"type": "reasoning.text", "text": block.get("thinking", ""),
                            "signature": block.get("signature"), "format": FORMAT, "index": len(details)})
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data", ""), "format": FORMAT,
                            "index": len(details)})
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}})
    message = assistant_message(content, reasoning, details, calls)
    return {"id": answer.get("id"), "object": "chat.completion", "model": answer.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": answer.get("stop_reason")}],
            "usage": usage_of(answer.get("usage"))}


class AnthropicCall(OpenAICall):
    """The same connection handling as an OpenAI call; the bytes are Anthropic's."""

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body.get("content"), list):
            raise UpstreamError(502, "upstream returned a Messages answer without content", raw=str(body)[:RAW_SCAN])
        return from_anthropic(body)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        tools: dict[int, int] = {}  # content block index -> tool call index
        message_id: str | None = None
        usage: dict[str, Any] = {}
        async for event in self._sse():
            kind = event.get("type")
            if kind == "message_start":
                message_id = event.get("message", {}).get("id")
                usage = event.get("message", {}).get("usage") or {}
            elif kind == "content_block_start":
                block = event.get("content_block") or {}
                if block.get("type") == "tool_use":
                    tools[event["index"]] = len(tools)
                    yield _chunk(message_id, {"tool_calls": [{"index": tools[event["index"]], "id": block.get("id"),
                                                              "type": "function",
                                                              "function": {"name": block.get("name"),
                                                                           "arguments": ""}}]})
                elif block.get("type") == "redacted_thinking":
                    yield _chunk(message_id, {"reasoning_details": [{"type": "reasoning.encrypted", "format": FORMAT,
                                                                     "data": block.get("data", ""),
                                                                     "index": event["index"]}]})
            elif kind == "content_block_delta":
                delta = event.get("delta") or {}
                dtype, index = delta.get("type"), event.get("index", 0)
                if dtype == "text_delta":
                    yield _chunk(message_id, {"content": delta.get("text", "")})
                elif dtype == "thinking_delta":
                    text = delta.get("thinking", "")
                    yield _chunk(message_id, {"reasoning": text, "reasoning_details": [
                        {"type": "reasoning.text", "text": text, "format": FORMAT, "index": index}]})
                elif dtype == "signature_delta":
                    yield _chunk(message_id, {"reasoning_details": [
                        {"type": "reasoning.text", "text": "", "signature": delta.get("signature"), "format": FORMAT,
                         "index": index}]})
                elif dtype == "input_json_delta" and index in tools:
                    arguments = delta.get("partial_json", "")
                    yield _chunk(message_id, {"tool_calls": [{"index": tools[index],
                                                              "function": {"arguments": arguments}}]})
            elif kind == "message_delta":
                usage = _merged(usage, event.get("usage"))
                stop = (event.get("delta") or {}).get("stop_reason")
                if stop:
                    yield _chunk(message_id, {}, finish=stop)
            elif kind == "message_stop":
                yield {"id": message_id, "object": "chat.completion.chunk", "choices": [], "usage": usage_of(usage)}
                return
            elif kind == "error":
                error = event.get("error") or {}
                status = 429 if error.get("type") == "rate_limit_error" else 502
                raise UpstreamError(status, f"Provider returned error mid-stream: {error.get('message', error)}"
                                    ).redacted(self.redact)  # the upstream's words
        raise UpstreamError(502, "upstream stream ended without message_stop")


def _merged(usage: Any, update: Any) -> Any:
    """message_delta's usage updates message_start's; anything not an object goes on to be rejected."""
    if update is None:
        return usage
    return {**usage, **update} if isinstance(usage, dict) and isinstance(update, dict) else update


def _chunk(message_id: str | None, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": message_id, "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class Anthropic(OpenAICompatible):
    call_type = AnthropicCall

    path = "/messages"
    forwarded_headers = ("anthropic-version", "anthropic-beta")  # Claude Code's betas must reach Anthropic

    def request_headers(self, provider: ProviderConfig, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "user-agent": USER_AGENT, "anthropic-version": VERSION,
                   **provider.headers}
        if key:
            headers["x-api-key"] = key
        return headers

    def translate(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        return to_anthropic(body, endpoint)
