"""POST /completions (legacy text completions): the request, validated for type and range in one msgspec
decode, and the answer's types for the OpenAPI document.

The fields it shares with chat completions take the same types and bounds (wire/chat.py) and become a
``ChatRequest`` for routing and the exchange core; ``prompt`` is sent upstream as it is, to endpoints that
declare ``completions`` among their ``apis``. ``logprobs`` is a count here (0–5, OpenAI's bound), not a
switch; ``echo`` and ``suffix`` pass to the upstream unchanged. One prompt per request: a list of prompts
(or ``n`` / ``best_of`` above 1) would multiply the output beyond what the request reserves.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from routeway.errors import APIError
from routeway.wire.chat import (
    ChatRequest,
    PositiveInt,
    ProviderPreferences,
    ResponseFormat,
    SamplingParameters,
    StreamOptions,
    UsageOption,
)
from routeway.wire.completion import ChoiceError
from routeway.wire.decode import decode


class CompletionRequest(SamplingParameters, omit_defaults=True):
    model: str | None = None
    models: list[str] | None = None
    prompt: str | Annotated[list[str], Meta(min_length=1, max_length=1)] | None = None
    provider: ProviderPreferences | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    usage: UsageOption | None = None
    max_tokens: PositiveInt | None = None
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None
    echo: bool | None = None
    suffix: str | None = None
    n: Annotated[int, Meta(ge=1, le=1)] | None = None
    best_of: Annotated[int, Meta(ge=1, le=1)] | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    transforms: list[str] | None = None

    def chat(self) -> ChatRequest:
        """The request as routing and the exchange core read it: the prompt as one user message (what its
        estimate counts), the shared parameters as they are."""
        prompt = self.prompt if isinstance(self.prompt, str) else (self.prompt or [""])[0]
        return ChatRequest(
            model=self.model, models=self.models, prompt=prompt, messages=[{"role": "user", "content": prompt}],
            provider=self.provider, stream=self.stream, stream_options=self.stream_options, usage=self.usage,
            max_tokens=self.max_tokens, user=self.user, metadata=self.metadata, transforms=self.transforms,
            **{name: getattr(self, name) for name in SamplingParameters.__struct_fields__})

    def upstream_fields(self) -> dict[str, Any]:
        """The text completion fields of its own, sent to ``/completions`` as they are."""
        fields = {"logprobs": self.logprobs, "echo": self.echo, "suffix": self.suffix}
        return {name: value for name, value in fields.items() if value is not None}


def parse_completion_request(body: bytes) -> CompletionRequest:
    request: CompletionRequest = decode(body, CompletionRequest)
    if not request.model and not request.models:
        raise APIError(400, "Invalid request: `model` is required", metadata={"param": "model"})
    if request.prompt is None:
        raise APIError(400, "Invalid request: `prompt` is required (a string)", metadata={"param": "prompt"})
    if request.response_format is not None and request.response_format.type != "text":
        raise APIError(400, "Invalid request: text completions take no JSON mode; use /chat/completions with"
                            " `response_format`", metadata={"param": "response_format"})
    return request


# ---- the answer, for the OpenAPI document -----------------------------------------------------------
class CompletionChoice(Struct, forbid_unknown_fields=False):
    text: str
    index: int
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "error"] | None
    native_finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None
    error: ChoiceError | None = None


class CompletionUsage(Struct, forbid_unknown_fields=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float


class CompletionResponse(Struct, forbid_unknown_fields=False):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    provider: str | None
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None
