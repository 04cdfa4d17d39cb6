"""The attempt loop on its own: order, the cap, the deadline, and what outcomes do to health."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from routeway.catalog import Endpoint, ModelInfo
from routeway.config import ProviderConfig, RoutingSettings
from routeway.errors import APIError
from routeway.providers import UpstreamError
from routeway.routing.attempts import first_answer, is_context_error, retry_after_seconds
from routeway.routing.health import Health
from routeway.routing.plan import Attempt

MODEL = ModelInfo("a/m", "M", 0, "", 8192, None, Decimal(1), Decimal(1), "Other", None, ("text",), ("text",), (), None, {})


def attempt(name: str) -> Attempt:
    endpoint = Endpoint(MODEL, ProviderConfig(name, "openai", "http://x"), name, 1000, 1000, 8192, None, "unknown", (), None)
    return Attempt(MODEL, endpoint)


def run(attempts: list[Attempt], outcomes: dict[str, object], limits: RoutingSettings, health: Health) -> tuple[str, list[dict]]:
    log: list[dict] = []

    async def start(a: Attempt, entry: dict) -> str:
        outcome = outcomes[a.endpoint.tag]
        if isinstance(outcome, float):
            await asyncio.sleep(outcome)
            return a.endpoint.tag
        if isinstance(outcome, UpstreamError):
            raise outcome
        return a.endpoint.tag

    async def main() -> str:
        _chosen, result = await first_answer(attempts, health, limits, start, log)
        return result

    return asyncio.run(main()), log


def test_falls_back_in_order_and_stops_at_a_client_error() -> None:
    health = Health()
    served, log = run([attempt("a"), attempt("b")], {"a": UpstreamError(502, "down", upstream_status=503), "b": "ok"},
                      RoutingSettings(), health)
    assert served == "b" and [e["provider"] for e in log] == ["a", "b"]
    assert health.of("a/a").counts(60, __import__("time").time())[1] == 1
    with pytest.raises(APIError) as stopped:
        run([attempt("a"), attempt("b")], {"a": UpstreamError(400, "bad", upstream_status=400, retryable=False), "b": "ok"},
            RoutingSettings(), Health())
    assert stopped.value.status == 400


def test_context_length_errors_fall_back() -> None:
    error = UpstreamError(400, "Provider returned error (400): This model's maximum context length is 8192 tokens",
                          upstream_status=400, retryable=False)
    assert is_context_error(error)
    served, _ = run([attempt("a"), attempt("b")], {"a": error, "b": "ok"}, RoutingSettings(), Health())
    assert served == "b"


def test_attempt_cap() -> None:
    failing = UpstreamError(502, "down", upstream_status=500)
    with pytest.raises(APIError):
        run([attempt("a"), attempt("b"), attempt("c")], {"a": failing, "b": failing, "c": "ok"},
            RoutingSettings(max_attempts=2), Health())


def test_deadline() -> None:
    with pytest.raises(APIError) as late:
        run([attempt("a")], {"a": 5.0}, RoutingSettings(deadline_seconds=0.2), Health())
    assert late.value.status == 408 and "deadline" in late.value.message


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
