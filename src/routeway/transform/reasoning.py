"""OpenRouter's unified ``reasoning`` request, translated per endpoint dialect, and the reasoning
fields of answers (``reasoning`` plus ``reasoning_details``), with ``exclude`` applied.

Dialects (the endpoint's ``dialect`` in the config):
  openai        ``reasoning_effort`` (OpenAI, vLLM/SGLang for gpt-oss, Grok); a budget becomes an effort
  openrouter    the ``reasoning`` object as is
  hermes        ``chat_template_kwargs.thinking`` (Hermes 4 on vLLM / SGLang)
  hermes-prompt the Hermes deep-thinking system prompt (engines without template kwargs)
  qwen3         ``chat_template_kwargs.enable_thinking``
  deepseek      ``chat_template_kwargs.thinking`` (DeepSeek V3.1 hybrid on vLLM / SGLang)
  llamacpp      ``chat_template_kwargs.enable_thinking`` and ``reasoning_format: "deepseek"``
  ollama        ``think``: true/false, or the effort name for low/medium/high
  anthropic     ``thinking: {type: enabled, budget_tokens}``: the client's budget, or its effort's share of
                max_tokens, at least 1024 and below max_tokens (dropped when that cannot hold)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routeway.catalog import Endpoint
from routeway.wire.chat import ChatRequest

# share of max_tokens a budget-style upstream may think with, per effort (OpenRouter's mapping)
RATIOS = {"max": 0.95, "xhigh": 0.95, "high": 0.8, "medium": 0.5, "low": 0.2, "minimal": 0.1}
HERMES_THINKING_PROMPT = (
    "You are a deep thinking AI, you may use extremely long chains of thought to deeply consider the problem and "
    "deliberate with yourself via systematic reasoning processes to help come to a correct solution prior to "
    "answering. You should enclose your thoughts and internal monologue inside <think> </think> tags, and then "
    "provide your solution or response to the problem."
)


@dataclass(frozen=True, slots=True)
class Wish:
    """What the client asked for. ``enabled`` None: nothing asked, the engine's default applies."""
    enabled: bool | None
    effort: str | None = None
    budget: int | None = None
    exclude: bool = False


def wish(chat: ChatRequest) -> Wish:
    r = chat.reasoning
    effort = chat.reasoning_effort or (r.effort if r else None)
    exclude = bool(r and r.exclude) or chat.include_reasoning is False
    if r is None and chat.reasoning_effort is None and chat.include_reasoning is None:
        return Wish(None)
    if effort == "none" or (r is not None and r.enabled is False):
        return Wish(False, exclude=exclude)
    if r is not None and r.max_tokens:
        return Wish(True, budget=r.max_tokens, exclude=exclude)
    return Wish(True, effort=effort or "medium", exclude=exclude)


def budget_tokens(w: Wish, max_tokens: int | None, floor: int = 0) -> int | None:
    """A thinking budget for budget-style upstreams: the client's, or its effort's share of max_tokens."""
    if not w.enabled:
        return None
    if w.budget is not None:
        return max(w.budget, floor)
    if max_tokens is None:
        return None
    return max(int(max_tokens * RATIOS.get(w.effort or "medium", 0.5)), floor)


def effort_of(w: Wish, max_tokens: int | None) -> str:
    if w.effort is not None:
        return "xhigh" if w.effort == "max" else w.effort
    if w.budget is not None and max_tokens:
        share = w.budget / max_tokens
        for name in ("xhigh", "high", "medium", "low"):
            if share >= RATIOS[name] - 1e-9:
                return name
        return "minimal"
    return "medium"


def apply_reasoning(body: dict[str, Any], chat: ChatRequest, endpoint: Endpoint) -> list[str]:
    """Put the reasoning switch into ``body``; returns the parameters dropped."""
    w = wish(chat)
    if w.enabled is None:
        return []
    if "reasoning" not in endpoint.supported_parameters and "include_reasoning" not in endpoint.supported_parameters:
        return ["reasoning"]
    dialect = endpoint.dialect or "openai"
    kwargs = body.setdefault("chat_template_kwargs", {}) if dialect in ("hermes", "qwen3", "deepseek", "llamacpp") else {}
    if dialect == "openrouter":
        body["reasoning"] = {k: v for k, v in {"enabled": w.enabled, "effort": w.effort, "max_tokens": w.budget,
                                               "exclude": w.exclude or None}.items() if v is not None}
    elif dialect in ("hermes", "deepseek"):
        kwargs["thinking"] = w.enabled
    elif dialect in ("qwen3", "llamacpp"):
        kwargs["enable_thinking"] = w.enabled
        if dialect == "llamacpp":
            body["reasoning_format"] = "deepseek"
    elif dialect == "hermes-prompt":
        if w.enabled:
            body["messages"] = _with_system_prompt(body["messages"], HERMES_THINKING_PROMPT)
    elif dialect == "ollama":
        effort = effort_of(w, chat.output_limit)
        body["think"] = effort if w.enabled and effort in ("low", "medium", "high") else w.enabled
    elif dialect == "anthropic":
        output = body.get("max_tokens") or endpoint.max_output or 4096  # as transform/request.py set it
        budget = budget_tokens(w, output, floor=1024)
        if w.enabled and budget is not None and budget < output:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            body["max_tokens"] = output
        elif w.enabled:
            return ["reasoning"]  # Anthropic needs 1024 <= budget < max_tokens
    elif dialect == "openai":
        body["reasoning_effort"] = effort_of(w, chat.output_limit) if w.enabled else "none"
    return []


def _with_system_prompt(messages: list[dict[str, Any]], prompt: str) -> list[dict[str, Any]]:
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        return [{**messages[0], "content": prompt + "\n\n" + messages[0]["content"]}, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]


def detail(text: str, signature: str | None = None, fmt: str = "unknown") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning.text", "text": text, "format": fmt, "index": 0}
    if signature is not None:
        item["signature"] = signature
    return item


def finish_reasoning(message: dict[str, Any], exclude: bool) -> None:
    """Give a message (or delta) with ``reasoning`` its ``reasoning_details``, or, with ``exclude``,
    drop both: the tokens were still produced and are still billed."""
    if exclude:
        message.pop("reasoning", None)
        message.pop("reasoning_details", None)
        return
    text = message.get("reasoning")
    if text and not message.get("reasoning_details"):
        message["reasoning_details"] = [detail(text)]
