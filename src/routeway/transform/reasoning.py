"""OpenRouter's unified ``reasoning`` request read as the client's wish, written into the upstream request by
the endpoint's dialect (routeway/dialects/, one module each), and the reasoning fields of answers
(``reasoning`` plus ``reasoning_details``), with ``exclude`` applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routeway.catalog import Endpoint
from routeway.wire.chat import ChatRequest

# share of max_tokens a budget-style upstream may think with, per effort (OpenRouter's mapping)
RATIOS = {"max": 0.95, "xhigh": 0.95, "high": 0.8, "medium": 0.5, "low": 0.2, "minimal": 0.1}


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
    """Put the reasoning switch into ``body`` in the endpoint's dialect; returns the parameters dropped."""
    w = wish(chat)
    if w.enabled is None:
        return []
    if "reasoning" not in endpoint.supported_parameters and "include_reasoning" not in endpoint.supported_parameters:
        return ["reasoning"]
    return [] if endpoint.dialect_impl.reasoning(body, w, chat, endpoint) else ["reasoning"]


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
