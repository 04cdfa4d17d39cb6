"""The most one request can cost on one endpoint. The same bound sizes the reservation before the
upstream call and caps the tokens an upstream may claim afterwards, so a charge can never exceed the
reservation whatever the upstream reports."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from routeway.ledger.money import worst_case_cost

if TYPE_CHECKING:
    from routeway.catalog import Endpoint


class TokenBound(NamedTuple):  # a tuple: built three times per request, at half a frozen dataclass's cost
    prompt: int
    completion: int

    @classmethod
    def of(cls, body_bytes: int, output_limit: int | None, endpoint: Endpoint) -> TokenBound:
        """A token is at least one byte, so the request body's byte count bounds the prompt (as does the
        endpoint's context); the output is bounded by ``max_tokens``, sent upstream, or else by the
        endpoint's max output (or its context)."""
        most = endpoint.max_completion  # output_tokens(output_limit, endpoint), inlined (bench step 37)
        return cls(min(body_bytes, endpoint.context_length), min(output_limit, most) if output_limit else most)

    def cost(self, prompt_nano_per_m: int, completion_nano_per_m: int) -> int:
        """Rounded up per part: never below the cost of any counts within the bound."""
        return worst_case_cost(self.prompt, prompt_nano_per_m) + worst_case_cost(self.completion, completion_nano_per_m)


def output_tokens(output_limit: int | None, endpoint: Endpoint) -> int:
    """The most output tokens a request may ask of ``endpoint``: the client's ``max_tokens`` (routing
    leaves out endpoints whose max output is smaller), else the endpoint's max output or context. It is
    sent upstream as ``max_tokens`` (transform/request.py), so the engine stops where the bound does."""
    return min(output_limit, endpoint.max_completion) if output_limit else endpoint.max_completion


def worst_case(body_bytes: int, output_limit: int | None, endpoints: Iterable[Endpoint]) -> tuple[int, Endpoint]:
    """The most the request can cost over the endpoints it may be tried on, and the endpoint that costs it
    (the first of the most expensive): what the request reserves before any upstream call."""
    worst: tuple[int, Endpoint] | None = None
    for endpoint in endpoints:  # TokenBound.of(...).cost(...), inlined: this runs for every planned attempt
        completion = min(output_limit, endpoint.max_completion) if output_limit else endpoint.max_completion
        cost = (worst_case_cost(min(body_bytes, endpoint.context_length), endpoint.prompt_bound_nano_per_m)
                + worst_case_cost(completion, endpoint.completion_nano_per_m))
        if worst is None or cost > worst[0]:
            worst = (cost, endpoint)
    if worst is None:
        raise ValueError("a request is reserved for at least one endpoint")
    return worst
