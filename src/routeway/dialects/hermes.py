"""``hermes``: Hermes 3/4 on vLLM / SGLang served **without** reasoning or tool parsers, so the engine
sends the model's raw text. routeway writes the model's own conventions into the request and splits the
text back (transform/raw_hermes.py, with the parser in transform/hermes.py): tools become the Hermes
``<tools>`` system prompt, past calls ``<tool_call>`` text and results ``<tool_response>`` blocks; JSON
mode is the Hermes JSON-mode system prompt with the schema; ``<think>`` becomes ``reasoning`` and
``<tool_call>`` blocks ``tool_calls``. Thinking is the template's ``thinking`` switch."""

from __future__ import annotations

import json
from typing import Any

from routeway.catalog import Endpoint
from routeway.dialects.base import Dialect, template_kwargs, with_system_prompt
from routeway.transform.answers import AnswerSplitter
from routeway.transform.raw_hermes import HermesAnswer, prepare_request
from routeway.transform.reasoning import Wish
from routeway.transform.structured import schema_of
from routeway.wire.chat import ChatRequest, ResponseFormat

JSON_MODE_PROMPT = ("You are a helpful assistant that answers in JSON. Here's the json schema you must adhere to:\n"
                    "<schema>\n{schema}\n</schema>")
JSON_ONLY_PROMPT = "You are a helpful assistant that answers in JSON."


class Hermes(Dialect):
    name = "hermes"
    renders_tools = True
    prompts_json = True

    def reasoning(self, body: dict[str, Any], wish: Wish, chat: ChatRequest, endpoint: Endpoint) -> bool:
        template_kwargs(body)["thinking"] = wish.enabled
        return True

    def response_format(self, body: dict[str, Any], fmt: ResponseFormat) -> None:
        schema = schema_of(fmt)
        prompt = JSON_MODE_PROMPT.format(schema=json.dumps(schema)) if schema is not None else JSON_ONLY_PROMPT
        body["messages"] = with_system_prompt(body["messages"], prompt, before=False)

    def render(self, body: dict[str, Any]) -> None:
        prepare_request(body, body.get("tools"), body.get("tool_choice"))

    def splitter(self, id_prefix: str, tools: list[dict[str, Any]] | None) -> AnswerSplitter | None:
        return HermesAnswer(id_prefix, tools)
