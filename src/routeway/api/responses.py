"""POST /responses: the OpenAI Responses API, stateless as OpenRouter's. The request is translated into
the internal chat request (instructions → a system message, input items → messages, function tools,
``text.format`` → ``response_format``, ``reasoning``, ``max_output_tokens``), which then takes chat's own
path (api/chat.py ``admit`` and ``answer``: the same authentication, limits, reservation, routing, ledger
and record, with ``api = "responses"``); api/responses_render.py writes the answer as Responses.

routeway keeps no responses: ``store: true``, ``previous_response_id`` and ``conversation`` are a 400,
and the whole conversation travels in ``input``, as Codex and the Agents SDK send it with ``store: false``.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

import msgspec

from routeway.api.answer_cache import cached_answers
from routeway.api.auth import authenticate
from routeway.api.chat import admit, answer
from routeway.api.http import Request, Response
from routeway.api.responses_render import REASONING_PREFIX, ResponsesRenderer, error_response
from routeway.errors import APIError
from routeway.wire.chat import parse_chat_request
from routeway.wire.decode import decode
from routeway.wire.responses import ResponsesRequest

if TYPE_CHECKING:
    from routeway.services import Services

_encode = msgspec.json.Encoder().encode
_ROLES = frozenset({"user", "system", "developer", "assistant"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text", "refusal"})
# chat request fields a Responses request carries under the same name and meaning
_SAME = ("model", "models", "stream", "temperature", "top_p", "top_k", "frequency_penalty", "presence_penalty",
         "seed", "stop", "provider", "plugins", "metadata", "session_id", "service_tier", "parallel_tool_calls",
         "top_logprobs")
API = "responses"  # the generation record's ``api``
STATELESS = ("routeway keeps no responses (stateless, as OpenRouter's Responses API): send the whole"
             " conversation in `input`")


def routes(services: Services) -> list[tuple[str, str, Any]]:
    async def responses(request: Request) -> Response | None:
        try:
            key = authenticate(services, request, management=False)
            await admit(services, key)
            raw = await request.body(services.settings.max_body_bytes)
            req: ResponsesRequest = decode(raw, ResponsesRequest)
            body = _encode(chat_body(req))
            chat = parse_chat_request(body)  # chat's own checks: model, messages, depth, conflicts
            cache = cached_answers(services, request, key, API, chat, raw)
            if cache is not None and (entry := await cache.lookup()) is not None:
                return await cache.replay(entry)

            def renderer(generation_id: str, _: int) -> ResponsesRenderer:
                return ResponsesRenderer(request, req, generation_id, services.settings.keepalive_seconds)

            if cache is None:
                return await answer(services, request, key, chat, len(body), renderer, api=API)
            return await cache.keep(await answer(services, request, key, chat, len(body), renderer, api=API,
                                                 prepare=cache.prepare))
        except APIError as error:  # raised before any byte of the answer went out: the Responses error shape
            return error_response(error)

    return [("POST", "/responses", responses)]


def chat_body(req: ResponsesRequest) -> dict[str, Any]:
    """The chat completions request that asks the same as ``req``."""
    if req.store:
        raise _invalid("store", f"`store: true` is not supported: {STATELESS}, with `store: false` or no `store`.")
    if req.previous_response_id is not None:
        raise _invalid("previous_response_id", f"`previous_response_id` is not supported: {STATELESS}.")
    if req.conversation is not None:
        raise _invalid("conversation", f"`conversation` is not supported: {STATELESS}.")
    if req.background:
        raise _invalid("background", "`background: true` is not supported: routeway answers while the request"
                                     " is open (use `stream: true` for long answers).")
    if req.input is None or req.input == []:
        raise _invalid("input", "`input` is required: a string or a non-empty array of items.")
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages += input_messages(req.input)
    body: dict[str, Any] = {"messages": messages}
    for name in _SAME:
        value = getattr(req, name)
        if value is not None:
            body[name] = msgspec.to_builtins(value)
    if req.top_logprobs is not None:
        body["logprobs"] = True
    if req.max_output_tokens is not None:
        body["max_tokens"] = req.max_output_tokens
    if req.user or req.safety_identifier:
        body["user"] = req.user or req.safety_identifier
    if req.tools:
        body["tools"] = [_tool(tool, i) for i, tool in enumerate(req.tools)]
    if req.tool_choice is not None:
        body["tool_choice"] = _tool_choice(req.tool_choice)
    if req.text is not None:
        if req.text.format is not None:
            body["response_format"] = _response_format(req.text.format)
        if req.text.verbosity is not None:
            body["verbosity"] = req.text.verbosity
    if req.reasoning is not None:
        r = req.reasoning
        reasoning = {"effort": r.effort, "summary": r.summary or r.generate_summary, "max_tokens": r.max_tokens,
                     "exclude": r.exclude, "enabled": r.enabled}
        body["reasoning"] = {k: v for k, v in reasoning.items() if v is not None}
    return body


def input_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as chat messages. An assistant turn's reasoning, text and function calls become one
    assistant message; each ``function_call_output`` a tool message."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    assistant: dict[str, Any] | None = None  # the assistant turn being built

    def turn(fresh: bool) -> dict[str, Any]:
        nonlocal assistant
        if assistant is None or fresh:
            assistant = {"role": "assistant", "content": None}
            messages.append(assistant)
        return assistant

    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise _invalid(f"{where}.role", f"`{where}.role` must be one of {', '.join(sorted(_ROLES))},"
                                                f" not {role!r}.")
            if role == "assistant":
                current = assistant
                message = turn(current is None or bool(current["content"] or current.get("tool_calls")))
                message["content"] = _text(item.get("content"), f"{where}.content")
            else:
                assistant = None
                messages.append({"role": role, "content": _content(item.get("content"), f"{where}.content")})
        elif kind == "function_call":
            call_id, name = _string(item, "call_id", where), _string(item, "name", where)
            arguments = item.get("arguments", "")
            if not isinstance(arguments, str):
                raise _invalid(f"{where}.arguments", f"`{where}.arguments` must be a string of JSON.")
            turn(False).setdefault("tool_calls", []).append(
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        elif kind == "function_call_output":
            call_id = _string(item, "call_id", where)
            assistant = None
            messages.append({"role": "tool", "tool_call_id": call_id,
                             "content": _text(item.get("output"), f"{where}.output")})
        elif kind == "reasoning":
            details = _reasoning_details(item, where)
            current = assistant
            message = turn(current is None or bool(current["content"] or current.get("tool_calls")))
            message.setdefault("reasoning_details", []).extend(details)
        elif kind == "item_reference":
            raise _invalid(f"{where}.type", f"`{where}` refers to a stored item: {STATELESS}.")
        else:
            raise _invalid(f"{where}.type", f"`{where}.type` {kind!r} is not supported: routeway takes message,"
                                            " function_call, function_call_output and reasoning items.")
    return messages


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's content as chat content: a string, or chat's content parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(where, f"`{where}` must be a string or an array of content parts.")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            parts.append({"type": "text", "text": _string(part, "text" if kind != "refusal" else "refusal",
                                                          f"{where}[{j}]")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and isinstance(part.get("file_data"), str):
            parts.append({"type": "file", "file": {"filename": part.get("filename") or "file",
                                                   "file_data": part["file_data"]}})
        elif kind in ("input_image", "input_file"):
            raise _invalid(f"{where}[{j}]", f"`{where}[{j}]` must carry its data (`image_url` or `file_data`):"
                                            " routeway stores no files, so a `file_id` cannot be resolved.")
        else:
            raise _invalid(f"{where}[{j}]", f"`{where}[{j}]` is not a supported content part ({kind!r}).")
    return parts


def _text(content: Any, where: str) -> str:
    """Content that upstreams take as text (assistant turns, tool outputs): the text parts joined."""
    if content is None:
        return ""
    converted = _content(content, where)
    if isinstance(converted, str):
        return converted
    if any(part["type"] != "text" for part in converted):
        raise _invalid(where, f"`{where}` may hold text parts only.")
    return "".join(part["text"] for part in converted)


def _reasoning_details(item: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The reasoning details routeway packed into ``encrypted_content`` (signatures kept for the upstream
    that wrote them); without them, the item's text, which no upstream verifies (encrypted content from
    elsewhere, e.g. OpenAI's, means nothing to another upstream and is left out)."""
    blob = item.get("encrypted_content")
    if isinstance(blob, str) and blob.startswith(REASONING_PREFIX):
        try:
            details = msgspec.json.decode(base64.urlsafe_b64decode(blob[len(REASONING_PREFIX):]))
        except (binascii.Error, ValueError, msgspec.DecodeError):
            details = None
        if not isinstance(details, list) or not all(isinstance(d, dict) and isinstance(d.get("type"), str)
                                                    for d in details):
            raise _invalid(f"{where}.encrypted_content", f"`{where}.encrypted_content` is not reasoning routeway"
                                                         " wrote: pass it back unchanged.")
        return details
    texts = [part.get("text") for key in ("content", "summary") for part in item.get(key) or ()
             if isinstance(part, dict)]
    text = "".join(t for t in texts if isinstance(t, str))
    return [{"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}] if text else []


def _tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    where = f"tools[{i}]"
    if tool.get("type") != "function":
        raise _invalid(f"{where}.type", f"`{where}.type` {tool.get('type')!r} is not supported: routeway runs no"
                                        " hosted tools; declare function tools and run them yourself.")
    function = {"name": _string(tool, "name", where)}
    for name in ("description", "parameters", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _invalid("tool_choice", "`tool_choice` must be none, auto, required or {\"type\": \"function\","
                                  " \"name\": …}.")


def _response_format(fmt: Any) -> dict[str, Any]:
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    if not fmt.name:
        raise _invalid("text.format.name", "`text.format.name` is required for a json_schema format.")
    schema = {"name": fmt.name, "schema": fmt.schema, "description": fmt.description, "strict": fmt.strict}
    return {"type": "json_schema", "json_schema": {k: v for k, v in schema.items() if v is not None}}


def _string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise _invalid(f"{where}.{name}", f"`{where}.{name}` must be a string.")
    return value


def _invalid(param: str, message: str) -> APIError:
    return APIError(400, f"Invalid request: {message}", metadata={"param": param})
