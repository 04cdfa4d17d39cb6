"""Structured output: ``response_format`` per endpoint (native, llama.cpp's form, or the Hermes
JSON-mode prompt), checking answers against the schema (jsonschema), and OpenRouter's
``response-healing`` repairs for non-streaming answers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import msgspec

from routeway.catalog import Endpoint
from routeway.errors import APIError
from routeway.wire.chat import ChatRequest, ResponseFormat

PROMPTED_DIALECTS = ("hermes", "hermes-prompt")  # raw-text Hermes engines: routeway writes the prompt
JSON_MODE_PROMPT = "You are a helpful assistant that answers in JSON. Here's the json schema you must adhere to:\n<schema>\n{schema}\n</schema>"
JSON_ONLY_PROMPT = "You are a helpful assistant that answers in JSON."


def wants_json(response_format: ResponseFormat | None) -> bool:
    return response_format is not None and response_format.type in ("json_object", "json_schema")


def is_strict(response_format: ResponseFormat | None) -> bool:
    """``json_schema`` with ``strict: true``: an answer that does not validate must not be passed on."""
    return (response_format is not None and response_format.type == "json_schema"
            and response_format.json_schema is not None and bool(response_format.json_schema.strict))


def schema_of(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    if response_format is None or response_format.type != "json_schema" or response_format.json_schema is None:
        return None
    return response_format.json_schema.schema


def check_request(chat: ChatRequest) -> None:
    """A schema that is not a valid JSON Schema is the client's error, found before any upstream call."""
    schema = schema_of(chat.response_format)
    if chat.response_format is not None and chat.response_format.type == "json_schema" and schema is None:
        raise APIError(400, "Invalid request: `response_format.json_schema.schema` is required for type json_schema",
                       metadata={"param": "response_format.json_schema.schema"})
    if schema is not None:
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise APIError(400, f"Invalid request: `response_format.json_schema.schema` is not a valid JSON Schema:"
                           f" {exc.message}", metadata={"param": "response_format.json_schema.schema"}) from None


def supports_structured(endpoint: Endpoint) -> bool:
    return bool({"response_format", "structured_outputs"} & set(endpoint.supported_parameters)) or \
        endpoint.dialect in PROMPTED_DIALECTS


def apply_response_format(body: dict[str, Any], chat: ChatRequest, endpoint: Endpoint) -> None:
    """Native pass-through for most engines; llama.cpp takes json_object + schema; raw Hermes engines get
    the JSON-mode system prompt instead (and a local model, run by routeway, both)."""
    fmt = chat.response_format
    if not wants_json(fmt):
        return
    schema = schema_of(fmt)
    if endpoint.dialect in PROMPTED_DIALECTS:
        body.pop("response_format", None)
        if endpoint.provider.constrains_output:  # routeway's own engine: the prompt tells, a grammar enforces
            body["response_format"] = msgspec.to_builtins(fmt)
        prompt = JSON_MODE_PROMPT.format(schema=json.dumps(schema)) if schema is not None else JSON_ONLY_PROMPT
        messages = body["messages"]
        if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
            body["messages"] = [{**messages[0], "content": messages[0]["content"] + "\n\n" + prompt}, *messages[1:]]
        else:
            body["messages"] = [{"role": "system", "content": prompt}, *messages]
    elif endpoint.dialect == "llamacpp":
        body["response_format"] = {"type": "json_object", **({"schema": schema} if schema is not None else {})}
    elif "response_format" not in body and supports_structured(endpoint):
        body["response_format"] = msgspec.to_builtins(fmt)


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    text: str  # the content to send (healed when healing worked)
    problem: str | None = None
    healed: bool = False


def check_answer(text: str | None, response_format: ResponseFormat, heal: bool) -> Verdict:
    source = text or ""
    problem = _problem(source, response_format)
    if problem is None:
        return Verdict(True, source)
    if heal:
        repaired = repair(source)
        if repaired is not None and _problem(repaired, response_format) is None:
            return Verdict(True, repaired, healed=True)
    return Verdict(False, source, problem)


def _problem(text: str, response_format: ResponseFormat) -> str | None:
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"the answer is not valid JSON ({exc})"
    schema = schema_of(response_format)
    if schema is not None:
        error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(value))
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "(root)"
            return f"the answer does not match the schema at {where}: {error.message}"
    elif not isinstance(value, (dict, list)):
        return "the answer is JSON but not an object"
    return None


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)(?:```|$)", re.S)


def repair(text: str) -> str | None:
    """Fences and prose around the JSON, trailing commas, and a truncated end (open strings, brackets)."""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    text = text[min(starts):]
    out: list[str] = []
    closers: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]":
            _drop_trailing_comma(out)
            if not closers:
                break
            closers.pop()
            out.append(ch)
            if not closers:
                break
            continue
        out.append(ch)
    if in_string:
        out.append('"')
    _drop_trailing_comma(out)
    while closers:
        if "".join(out).rstrip().endswith(":"):
            out.append(" null")
        out.append(closers.pop())
    candidate = "".join(out)
    try:
        json.loads(candidate)
    except ValueError:
        return None
    return candidate


def _drop_trailing_comma(out: list[str]) -> None:
    i = len(out) - 1
    while i >= 0 and out[i].isspace():
        i -= 1
    if i >= 0 and out[i] == ",":
        del out[i]
