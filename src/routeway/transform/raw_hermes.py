"""Raw-text Hermes endpoints (dialects ``hermes`` and ``hermes-prompt``, routeway/dialects/hermes.py):
engines served without reasoning or tool parsers, so routeway writes the model's own conventions into the
request and splits its text back into OpenAI's shape.

Request: tools become the Hermes function-calling system prompt (``<tools>`` JSON), earlier assistant
tool calls become ``<tool_call>`` text, tool results become ``<tool_response>`` blocks, and earlier
reasoning is not re-sent (the Hermes template drops past chains of thought by default).
Answer: ``<think>`` → ``reasoning``, ``<tool_call>`` → ``tool_calls`` (parser in ``transform.hermes``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from routeway.transform.hermes import (
    ContentDelta,
    Event,
    HermesStreamParser,
    ReasoningDelta,
    ToolCallArguments,
    ToolCallError,
    ToolCallStart,
    parse_text,
)

TOOLS_PROMPT = (
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML tags."
    " You may call one or more functions to assist with the user query. Don't make assumptions about what values to"
    " plug into functions. Here are the available tools: <tools> {tools} </tools> Use the following pydantic model"
    " json schema for each tool call you will make: {{\"properties\": {{\"name\": {{\"title\": \"Name\", \"type\":"
    " \"string\"}}, \"arguments\": {{\"title\": \"Arguments\", \"type\": \"object\"}}}}, \"required\": [\"name\","
    " \"arguments\"], \"title\": \"FunctionCall\", \"type\": \"object\"}}\nFor each function call return a json object"
    " with function name and arguments within <tool_call></tool_call> XML tags as follows:\n<tool_call>\n"
    "{{\"name\": <function-name>, \"arguments\": <args-dict>}}\n</tool_call>"
)


def prepare_request(body: dict[str, Any], tools: list[dict[str, Any]] | None, tool_choice: Any) -> None:
    """Rewrite ``body`` for a raw Hermes engine (in place)."""
    body.pop("tools", None)
    body.pop("tool_choice", None)
    body.pop("parallel_tool_calls", None)
    messages = [_render(m) for m in body["messages"]]
    if tools and tool_choice != "none":
        offered = tools
        if isinstance(tool_choice, dict):
            wanted = (tool_choice.get("function") or {}).get("name")
            offered = [t for t in tools if t["function"]["name"] == wanted] or tools
        prompt = TOOLS_PROMPT.format(tools=json.dumps(offered))
        if tool_choice == "required" or isinstance(tool_choice, dict):
            prompt += "\nYou must call a tool in this turn."
        if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
            messages[0] = {**messages[0], "content": prompt + "\n\n" + messages[0]["content"]}
        else:
            messages.insert(0, {"role": "system", "content": prompt})
    body["messages"] = messages


def _render(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role == "assistant":
        rendered = {k: v for k, v in message.items() if k not in ("tool_calls", "reasoning", "reasoning_details",
                                                                   "reasoning_content")}
        calls = message.get("tool_calls") or []
        if calls:
            text = message.get("content") or ""
            blocks = []
            for call in calls:
                function = call.get("function") or {}
                arguments = function.get("arguments") or "{}"
                with contextlib.suppress(ValueError):  # the client's own malformed history: passed on as written
                    arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
                blocks.append("<tool_call>\n" + json.dumps({"name": function.get("name"), "arguments": arguments})
                              + "\n</tool_call>")
            rendered["content"] = (text + "\n" if text else "") + "\n".join(blocks)
        return rendered
    if role == "tool":
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        payload = {"name": message.get("name"), "content": content} if message.get("name") else content
        text = payload if isinstance(payload, str) else json.dumps(payload)
        return {"role": "tool", "tool_call_id": message.get("tool_call_id"),
                "content": f"<tool_response>\n{text}\n</tool_response>"}
    return message


def tool_names(tools: list[dict[str, Any]] | None) -> frozenset[str] | None:
    return frozenset(t["function"]["name"] for t in tools) if tools else None


def split_message(message: dict[str, Any], id_prefix: str, names: frozenset[str] | None) -> tuple[list[str], bool]:
    """Split a whole answer in place; returns (tool-call errors, ended inside <think>)."""
    text = message.get("content")
    if not isinstance(text, str):
        return [], False
    parsed = parse_text(text, id_prefix=id_prefix, tool_names=names)
    message["content"] = parsed.content or None
    if parsed.reasoning:
        message["reasoning"] = (message.get("reasoning") or "") + parsed.reasoning
    if parsed.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in parsed.tool_calls]
    return parsed.errors, parsed.unclosed_think


def finish_reason_for(normalized: str | None, has_calls: bool, errors: list[str], unclosed_think: bool) -> str | None:
    """A malformed or unknown tool call is an error, never a quiet stop; thinking cut off is a length stop."""
    if errors:
        return "error"
    if unclosed_think:
        return "length"
    if has_calls and normalized in ("stop", None):
        return "tool_calls"
    return normalized


class DeltaSplitter:
    """Feeds streamed content through the parser and turns its events into OpenAI delta fields."""

    __slots__ = ("parser", "errors", "calls")

    def __init__(self, id_prefix: str, names: frozenset[str] | None) -> None:
        self.parser = HermesStreamParser(id_prefix=id_prefix, tool_names=names)
        self.errors: list[str] = []
        self.calls = 0

    def split(self, delta: dict[str, Any], final: bool) -> None:
        text = delta.pop("content", None)
        events = self.parser.feed(text) if text else []
        if final:
            events += self.parser.finish()
        self._apply(events, delta)

    @property
    def unclosed_think(self) -> bool:
        return self.parser.unclosed_think

    def _apply(self, events: list[Event], delta: dict[str, Any]) -> None:
        content: list[str] = []
        reasoning: list[str] = []
        calls: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, ContentDelta):
                content.append(event.text)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
            elif isinstance(event, ToolCallStart):
                self.calls += 1
                calls.append({"index": event.index, "id": event.id, "type": "function",
                              "function": {"name": event.name, "arguments": ""}})
            elif isinstance(event, ToolCallArguments):
                calls.append({"index": event.index, "function": {"arguments": event.fragment}})
            elif isinstance(event, ToolCallError):
                self.errors.append(event.message)
        if content:
            delta["content"] = "".join(content)
        if reasoning:
            delta["reasoning"] = (delta.get("reasoning") or "") + "".join(reasoning)
        if calls:
            delta["tool_calls"] = calls


class HermesAnswer:
    """One raw Hermes answer, streamed or whole: the splitter the exchange core asks (transform/answers.py)."""

    __slots__ = ("id_prefix", "names", "splitter", "done", "made_calls")

    def __init__(self, id_prefix: str, tools: list[dict[str, Any]] | None) -> None:
        self.id_prefix, self.names = id_prefix, tool_names(tools)
        self.splitter: DeltaSplitter | None = None  # made on the first streamed delta
        self.done = False
        self.made_calls = False

    def delta(self, fields: dict[str, Any], final: bool) -> None:
        if self.splitter is None:
            self.splitter = DeltaSplitter(self.id_prefix, self.names)
        self.done = final  # the held-back text comes out before the finish reason
        self.splitter.split(fields, final)
        if fields.get("tool_calls"):
            self.made_calls = True

    def finish(self, finish: str | None) -> tuple[str | None, dict[str, Any] | None]:
        errors = self.splitter.errors if self.splitter is not None else []
        unclosed = self.splitter.unclosed_think if self.splitter is not None else False
        return finish_reason_for(finish, self.made_calls, errors, unclosed), _error(errors)

    def message(self, message: dict[str, Any], finish: str | None) -> tuple[str | None, dict[str, Any] | None]:
        errors, unclosed = split_message(message, self.id_prefix, self.names)
        return finish_reason_for(finish, bool(message.get("tool_calls")), errors, unclosed), _error(errors)


def _error(errors: list[str]) -> dict[str, Any] | None:
    if not errors:
        return None
    return {"code": 502, "message": "; ".join(errors), "metadata": {"error_type": "invalid_tool_call"}}
