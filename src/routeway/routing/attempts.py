"""Trying the planned attempts in order until one starts answering, and what each outcome means for
the endpoint's health: a failed attempt's here as it fails, the answering endpoint's once the exchange
ends (``note_answer``). Knows no dialect: adapters report failures as ``UpstreamError``."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from routeway.config import RoutingSettings
from routeway.errors import APIError
from routeway.interfaces import ConcurrencyLimits, HealthRegistry
from routeway.providers import UpstreamError
from routeway.routing.health import ERROR, OK, RATE_LIMITED
from routeway.routing.plan import Attempt

T = TypeVar("T")

_CONTEXT = re.compile(r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long", re.I)
_CLIENT_FAULTS = (400, 404, 413, 422)


def is_context_error(error: UpstreamError) -> bool:
    return error.upstream_status in (400, 413) and bool(_CONTEXT.search(error.message + (error.raw or "")))


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def note_failure(health: HealthRegistry, attempt: Attempt, error: UpstreamError) -> None:
    """429 → rate limited (and Retry-After honoured); a client-side fault says nothing about the
    endpoint; anything else counts against its uptime and breaker."""
    endpoint = health.of(attempt.endpoint.key)
    now = time.time()
    if error.upstream_status == 429:
        endpoint.record(RATE_LIMITED, now)
        wait = retry_after_seconds(error.retry_after)
        if wait:
            endpoint.retry_at = now + wait
    elif error.upstream_status in _CLIENT_FAULTS and not is_context_error(error):
        endpoint.breaker.release()
    else:
        endpoint.record(ERROR, now)


def note_answer(health: HealthRegistry, attempt: Attempt, *, cancelled: bool, ok: bool, ttft_ms: float,
                tokens_per_s: float | None) -> None:
    """The answering endpoint's outcome, once its answer ended: a client that left says nothing about
    the endpoint (its half-open probe, if it held one, is given back)."""
    endpoint = health.of(attempt.endpoint.key)
    if cancelled:
        endpoint.breaker.release()
    elif not ok:
        endpoint.record(ERROR, time.time())
    else:
        endpoint.record(OK, time.time(), ttft_ms=ttft_ms, tokens_per_s=tokens_per_s)


async def first_answer(
    attempts: list[Attempt], health: HealthRegistry, limits: RoutingSettings,
    start: Callable[[Attempt, dict[str, Any]], Awaitable[T]],
    log: list[dict[str, Any]], slots: ConcurrencyLimits | None = None,
) -> tuple[Attempt, T]:
    """Run ``start`` for each attempt in order until one returns; ``log`` gets one entry per attempt.
    Falls back on connection errors, timeouts, 408, 429, 5xx and context-length errors, and past an
    endpoint whose ``max_concurrency`` is taken; when every endpoint left is one of those, waits for the
    first (bounded queue and time) or answers 429. The answering endpoint's slot is still held: the caller
    gives it back (``slots.release(endpoint.key)``) when the exchange ends."""
    last: UpstreamError | None = None
    tried = 0
    full: list[Attempt] = []  # skipped: every slot of the engine taken

    async def attempt_once(attempt: Attempt) -> tuple[bool, T | None]:
        nonlocal last, tried
        entry: dict[str, Any] = {"provider": attempt.endpoint.tag, "model": attempt.model.id, "status": None}
        if not health.of(attempt.endpoint.key).breaker.acquire(time.time()):
            _give_back(slots, attempt)
            return False, None  # another request holds the half-open probe
        tried += 1
        log.append(entry)
        began = time.monotonic()
        try:
            result = await start(attempt, entry)
        except UpstreamError as error:
            _give_back(slots, attempt)
            entry.update(status=error.upstream_status or error.status, error=error.message,
                         ms=int((time.monotonic() - began) * 1000))
            note_failure(health, attempt, error)
            last = error
            if not (error.retryable or is_context_error(error)):
                raise _Stop() from None
            return False, None
        except BaseException:
            _give_back(slots, attempt)
            health.of(attempt.endpoint.key).breaker.release()
            raise
        entry["ms"] = int((time.monotonic() - began) * 1000)
        return True, result

    try:
        async with asyncio.timeout(limits.deadline_seconds):
            try:
                for attempt in attempts:
                    if tried >= limits.max_attempts:
                        break
                    cap = attempt.endpoint.max_concurrency
                    if cap is not None and slots is not None and not await slots.try_acquire(attempt.endpoint.key, cap):
                        full.append(attempt)
                        continue
                    done, result = await attempt_once(attempt)
                    if done:
                        return attempt, result  # type: ignore[return-value]
                if full and slots is not None and tried < limits.max_attempts:
                    waited = full[0]
                    cap = waited.endpoint.max_concurrency
                    assert cap is not None
                    if not await slots.acquire(waited.endpoint.key, cap, limits.concurrency_queue,
                                               limits.concurrency_wait_seconds):
                        raise _busy(full, log)
                    done, result = await attempt_once(waited)
                    if done:
                        return waited, result  # type: ignore[return-value]
            except _Stop:
                pass
    except TimeoutError:
        raise APIError(408, f"No endpoint answered within the routing deadline of {limits.deadline_seconds:g} s.",
                       metadata={"provider_responses": log}) from None
    if last is None:
        if full:
            raise _busy(full, log)
        raise APIError(503, "Every endpoint is busy probing after failures; retry shortly.",
                       headers={"retry-after": "1"})
    headers = {"retry-after": last.retry_after} if last.retry_after else None
    raise APIError(last.status, last.message, headers=headers,
                   metadata={"provider_name": log[-1]["provider"] if log else None, "raw": last.raw,
                             "previous_errors": [{"provider": e["provider"], "status": e["status"]} for e in log[:-1]]})


class _Stop(Exception):
    """An attempt failed in a way no other endpoint would fix: stop trying."""


def _give_back(slots: ConcurrencyLimits | None, attempt: Attempt) -> None:
    if slots is not None and attempt.endpoint.max_concurrency is not None:
        slots.release(attempt.endpoint.key)


def _busy(full: list[Attempt], log: list[dict[str, Any]]) -> APIError:
    names = ", ".join(f"{a.endpoint.tag} ({a.endpoint.max_concurrency} at once)" for a in full)
    return APIError(429, f"Every endpoint that can take this request is at its max_concurrency: {names}; retry"
                         f" shortly.", headers={"retry-after": "1"},
                    metadata={"provider_responses": log,
                              "availability": {"code": "max_concurrency", "retry_after": 1,
                                               "endpoints": [a.endpoint.tag for a in full]}})
