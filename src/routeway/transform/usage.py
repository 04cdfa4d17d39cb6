"""Token counts from an upstream's usage object. That object is untrusted input: it is read strictly
(every count a non-negative integer, every details field an object) and anything else is malformed, so
a lying or broken upstream can neither crash a request nor turn its claims into a negative charge."""

from __future__ import annotations

from typing import Any

# Why a usage object was not taken as reported: the ``reason`` label of routeway_usage_rejected_total.
NEGATIVE, NOT_INTEGER, NOT_OBJECT, CAPPED = "negative", "not_integer", "not_object", "capped"

# Larger claims are kept as this: every stored count must fit a 64-bit INTEGER column, and no real
# request comes near it (the cap to the request's bound happens later, in ``UsageCounts.capped_to``).
MAX_COUNT = 2**63 - 1


class MalformedUsage(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


_KINDS: dict[type, str] = {bool: "a boolean", int: "a number", str: "a string", float: "a fraction",
                           list: "a list", dict: "an object"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _count(fields: dict[str, Any], name: str) -> int:
    """A missing or null count is 0 (engines omit what they did not produce); a float is accepted only
    when it is a whole number (12.0), as JSON does not tell integers and floats apart."""
    value = fields.get(name)
    if value is None:
        return 0
    if type(value) is int and 0 <= value <= MAX_COUNT:  # the usual count, in one test (bench step 29)
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedUsage(NOT_INTEGER, f"{name} is {_kind(value)}, not a whole number of tokens")
    if value < 0:
        raise MalformedUsage(NEGATIVE, f"{name} is negative ({value})")
    return min(value, MAX_COUNT)


def _details(usage: dict[str, Any], name: str) -> dict[str, Any]:
    value = usage.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedUsage(NOT_OBJECT, f"{name} is {_kind(value)}, not an object")
    return value


class UsageCounts:
    """Token counts from the upstream's usage object, or estimated when it sent none."""

    __slots__ = ("prompt", "completion", "reasoning", "cached", "cache_write", "estimated", "native", "capped")

    def __init__(self, prompt: int = 0, completion: int = 0, reasoning: int = 0, cached: int = 0,
                 estimated: bool = False, native: dict[str, Any] | None = None, capped: bool = False,
                 cache_write: int = 0) -> None:
        self.prompt = prompt
        self.completion = completion
        self.reasoning = reasoning
        self.cached = cached  # prompt tokens read from the upstream's prompt cache
        self.cache_write = cache_write  # prompt tokens written into it (Anthropic's cache_creation_input_tokens)
        self.estimated = estimated
        self.native = native
        self.capped = capped  # some count was above what the request could have produced, and was cut

    @classmethod
    def from_upstream(cls, usage: Any) -> UsageCounts | None:
        """The counts of a usage object; None when there are none (no object, or one without
        ``prompt_tokens`` and ``completion_tokens``). Raises ``MalformedUsage``."""
        if usage is None:
            return None
        if not isinstance(usage, dict):
            raise MalformedUsage(NOT_OBJECT, f"usage is {_kind(usage)}, not an object")
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if prompt is None and completion is None:
            return None
        # the usual counts without details (``type(...) is int``: not bool or float), checked inline
        if (type(prompt) is int and type(completion) is int and 0 <= prompt <= MAX_COUNT
                and 0 <= completion <= MAX_COUNT and usage.get("prompt_tokens_details") is None
                and usage.get("completion_tokens_details") is None):
            # seven helper calls fewer than the general path below (bench step 37)
            return cls(prompt=prompt, completion=completion, native=usage)
        prompt_details = _details(usage, "prompt_tokens_details")
        completion_details = _details(usage, "completion_tokens_details")
        return cls(prompt=_count(usage, "prompt_tokens"), completion=_count(usage, "completion_tokens"),
                   reasoning=_count(completion_details, "reasoning_tokens"),
                   cached=_count(prompt_details, "cached_tokens"), native=usage,
                   cache_write=_count(prompt_details, "cache_write_tokens"))

    def capped_to(self, prompt_max: int, completion_max: int) -> UsageCounts:
        """These counts cut to what the request could have produced (cache reads, then cache writes, within
        prompt; reasoning within completion); ``self`` when nothing needed cutting."""
        if (self.prompt <= prompt_max and self.completion <= completion_max
                and self.cached + self.cache_write <= self.prompt and self.reasoning <= self.completion):
            return self  # an honest upstream's counts: comparisons instead of five min() calls (bench step 29)
        prompt, completion = min(self.prompt, prompt_max), min(self.completion, completion_max)
        cached, reasoning = min(self.cached, prompt), min(self.reasoning, completion)
        cache_write = min(self.cache_write, prompt - cached)
        return UsageCounts(prompt, completion, reasoning, cached, self.estimated, self.native, capped=True,
                           cache_write=cache_write)

    def to_wire(self, cost_usd: float) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "cost": cost_usd,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": self.cached, "cache_write_tokens": self.cache_write,
                                      "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning, "image_tokens": 0},
            "cost_details": {"upstream_inference_cost": None},
        }
