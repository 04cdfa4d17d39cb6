"""An Anthropic Messages request as routeway's internal request (a chat completions ``ChatRequest``), so
the one exchange core serves it: system string or blocks, text / image / document blocks, ``tool_use`` /
``tool_result`` history, thinking blocks (their signatures kept in ``reasoning_details``, so an Anthropic
upstream gets them back as it wrote them), tools and ``tool_choice``, ``thinking`` as routeway's reasoning.

A block routeway cannot translate is a 400 naming it, never silently dropped."""

from __future__ import annotations

import json
from typing import Any, Literal

from routeway.errors import APIError
from routeway.transform.normalize import assistant_message
from routeway.wire.chat import ChatRequest, FunctionSpec, Reasoning, Tool as ChatTool
from routeway.wire.messages import CountTokensRequest, MessagesRequest, Thinking, Tool, ToolChoice

ChatToolChoice = Literal["none", "auto", "required"] | dict[str, Any] | None
_CHOICES: dict[str, ChatToolChoice] = {"auto": "auto", "any": "required", "none": "none"}
# Claude Code's first system block: a per-request hash that would defeat every engine's prefix cache
ATTRIBUTION = "x-anthropic-billing-header:"
FORMAT = "anthropic-claude-v1"  # reasoning_details' format for thinking blocks (as the anthropic adapter writes)


def to_chat(request: MessagesRequest) -> ChatRequest:
    tools = to_chat_tools(request.tools)
    choice, parallel = _tool_choice(request.tool_choice)
    return ChatRequest(
        model=request.model, models=request.models, provider=request.provider, stream=request.stream,
        messages=to_chat_messages(request.system, request.messages or []), max_tokens=request.max_tokens,
        temperature=request.temperature, top_p=request.top_p, top_k=request.top_k,
        stop=request.stop_sequences or None, tools=tools, tool_choice=choice if tools else None,
        parallel_tool_calls=parallel if tools else None, reasoning=_reasoning(request.thinking),
        user=request.user or (request.metadata.user_id if request.metadata else None),
        session_id=request.session_id, plugins=request.plugins)


def count_messages(request: CountTokensRequest) -> list[dict[str, Any]]:
    """What a count covers: the translated conversation, with the tool definitions as one more message."""
    messages = to_chat_messages(request.system, request.messages or [])
    if request.tools:
        messages.append({"role": "system", "content": json.dumps(
            [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools])})
    return messages


def to_chat_tools(tools: list[Tool] | None) -> list[ChatTool] | None:
    if not tools:
        return None
    translated = []
    for i, tool in enumerate(tools):
        if tool.type not in (None, "custom"):
            raise APIError(400, f"Invalid request: `tools[{i}]` is Anthropic's server tool {tool.type!r}, which"
                                " routeway does not run; send client tools (name, description, input_schema)",
                           metadata={"param": f"tools[{i}].type"})
        translated.append(ChatTool(type="function", function=FunctionSpec(
            name=tool.name, description=tool.description, parameters=tool.input_schema or {"type": "object"})))
    return translated


def _tool_choice(choice: ToolChoice | None) -> tuple[ChatToolChoice, bool | None]:
    if choice is None:
        return None, None
    parallel = False if choice.disable_parallel_tool_use else None
    if choice.type == "tool":
        if not choice.name:
            raise APIError(400, "Invalid request: `tool_choice.name` is required when `tool_choice.type` is"
                                " \"tool\"", metadata={"param": "tool_choice.name"})
        return {"type": "function", "function": {"name": choice.name}}, parallel
    return _CHOICES[choice.type], parallel


def _reasoning(thinking: Thinking | None) -> Reasoning | None:
    if thinking is None:
        return None
    if thinking.type == "disabled":
        return Reasoning(enabled=False)
    if thinking.type == "enabled" and thinking.budget_tokens:
        return Reasoning(max_tokens=thinking.budget_tokens)
    return Reasoning(enabled=True)


def to_chat_messages(system: str | list[dict[str, Any]] | None,
                     messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(system, str):
        if system:
            out.append({"role": "system", "content": system})
    elif system:
        # one string: engines' chat templates take one system message, and the Hermes tools prompt joins it
        texts = [_text_part(block, f"system[{j}]")["text"] for j, block in enumerate(system)]
        kept = "\n\n".join(text for text in texts if not text.startswith(ATTRIBUTION))
        if kept:
            out.append({"role": "system", "content": kept})
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid(where, "must be an object with `role` and `content`")
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise _invalid(f"{where}.role", f"must be \"user\" or \"assistant\", not {role!r}")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif isinstance(content, list):
            out += _assistant(content, where) if role == "assistant" else _user(content, where)
        else:
            raise _invalid(f"{where}.content", "must be a string or an array of content blocks")
    return out


def _blocks(content: list[Any], where: str) -> list[tuple[str, str, dict[str, Any]]]:
    checked = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid(at, "must be an object with a `type`")
        checked.append((block["type"], at, block))
    return checked


def _user(content: list[Any], where: str) -> list[dict[str, Any]]:
    """Tool results become tool messages, first (they answer the assistant turn before); the rest of the
    blocks one user message after them."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for kind, at, block in _blocks(content, where):
        if kind == "tool_result":
            results.append(_tool_result(block, at))
        else:
            parts.append(_part(kind, block, at))
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def _tool_result(block: dict[str, Any], at: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"{at}.tool_use_id", "is required for a tool_result block")
    content = block.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list):
        parts = [_part(kind, inner, inner_at) for kind, inner_at, inner in _blocks(content, at)]
        content = "".join(p["text"] for p in parts) if all(p["type"] == "text" for p in parts) else parts
    elif not isinstance(content, str):
        raise _invalid(f"{at}.content", "must be a string or an array of content blocks")
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _assistant(content: list[Any], where: str) -> list[dict[str, Any]]:
    texts: list[str] = []
    thoughts: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for kind, at, block in _blocks(content, where):
        if kind == "text":
            texts.append(_text_part(block, at)["text"])
        elif kind == "thinking":
            thought = block.get("thinking")
            if not isinstance(thought, str):
                raise _invalid(f"{at}.thinking", "must be a string")
            thoughts.append(thought)
            detail: dict[str, Any] = {"type": "reasoning.text", "text": thought, "format": FORMAT,
                                      "index": len(details)}
            if isinstance(block.get("signature"), str) and block["signature"]:
                detail["signature"] = block["signature"]
            details.append(detail)
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": str(block.get("data", "")), "format": FORMAT,
                            "index": len(details)})
        elif kind == "tool_use":
            name, call_id = block.get("name"), block.get("id")
            if not isinstance(name, str) or not isinstance(call_id, str):
                raise _invalid(at, "needs a string `id` and `name`")
            calls.append({"id": call_id, "type": "function",
                          "function": {"name": name, "arguments": json.dumps(block.get("input") or {})}})
        else:
            raise _invalid(f"{at}.type", f"{kind!r} cannot be part of an assistant message here")
    return [assistant_message(texts, thoughts, details, calls)]


def _part(kind: str, block: dict[str, Any], at: str) -> dict[str, Any]:
    """One user content block as a chat content part."""
    if kind == "text":
        return _text_part(block, at)
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _source_url(block.get("source"), at, "image")}}
    if kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text":
            return {"type": "text", "text": str(source.get("data", ""))}
        title = block.get("title")
        return {"type": "file", "file": {"filename": title if isinstance(title, str) and title else "document.pdf",
                                         "file_data": _source_url(source, at, "document")}}
    raise _invalid(f"{at}.type", f"{kind!r} is not a content block routeway can pass on (text, image, document,"
                                 " tool_result)")


def _text_part(block: dict[str, Any], at: str) -> dict[str, Any]:
    text = block.get("text")
    if block.get("type") != "text" or not isinstance(text, str):
        raise _invalid(at, "must be a text block with a string `text`")
    return {"type": "text", "text": text}


def _source_url(source: Any, at: str, what: str) -> str:
    """A base64 source as a data URL, a url source as its URL."""
    if isinstance(source, dict):
        if source.get("type") == "base64" and isinstance(source.get("data"), str) \
                and isinstance(source.get("media_type"), str):
            return f"data:{source['media_type']};base64,{source['data']}"
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return str(source["url"])
    raise _invalid(f"{at}.source", f"must be a base64 source (`media_type`, `data`) or a url source for an {what}")


def _invalid(param: str, problem: str) -> APIError:
    return APIError(400, f"Invalid request: `{param}` {problem}", metadata={"param": param})
