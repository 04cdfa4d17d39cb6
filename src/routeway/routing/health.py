"""Endpoint health measured from real traffic, in memory with bounded windows.

Per endpoint: per-minute counters of successes, errors and 429s for one day (uptime over 5 min,
30 min, 1 day: successes / (successes + errors), 429s excluded, as OpenRouter reports it); recent
outcomes for the last 30 s (the default load balancer avoids endpoints with an outage there); a capped
reservoir of time-to-first-token and throughput samples for 30-minute percentiles; a circuit breaker;
and a Retry-After deadline. Everything here is updated on the event loop without awaits.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from routeway.routing.breaker import OPEN, Breaker

OK, ERROR, RATE_LIMITED = 0, 1, 2
MINUTES_KEPT = 24 * 60
SAMPLES_KEPT = 4096
OUTAGE_WINDOW = 30.0


@dataclass(frozen=True, slots=True)
class HealthSettings:
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    outage_min_errors: int = 3  # errors in the last 30 s that make an outage...
    outage_error_share: float = 0.5  # ...when they are at least this share of outcomes


class EndpointHealth:
    __slots__ = ("key", "minutes", "recent", "recent_errors", "recent_counted", "samples", "breaker", "retry_at",
                 "dirty", "settings")

    def __init__(self, key: str, settings: HealthSettings) -> None:
        self.key = key
        self.settings = settings
        self.minutes: deque[list[int]] = deque(maxlen=MINUTES_KEPT)  # [minute, ok, errors, rate_limited]
        self.recent: deque[tuple[float, int]] = deque()  # (time, outcome) of the last 30 s
        self.recent_errors = 0  # running counts over `recent`, so planning never walks the window
        self.recent_counted = 0  # outcomes that count for outages (429s do not)
        self.samples: deque[tuple[float, float, float | None]] = deque(maxlen=SAMPLES_KEPT)  # (time, ttft_ms, tps)
        self.breaker = Breaker(settings.breaker_threshold, settings.breaker_cooldown)
        self.retry_at = 0.0  # wall-clock time before which the upstream asked not to be called
        self.dirty: set[int] = set()  # minutes changed since the last persist

    def record(self, outcome: int, now: float, ttft_ms: float | None = None, tokens_per_s: float | None = None) -> None:
        minute = int(now // 60)
        if not self.minutes or self.minutes[-1][0] != minute:
            self.minutes.append([minute, 0, 0, 0])
        self.minutes[-1][1 + outcome] += 1
        self.dirty.add(minute)
        self.recent.append((now, outcome))
        self._count(outcome, 1)
        self._trim(now)
        if outcome == OK:
            self.breaker.success()
            if ttft_ms is not None:
                self.samples.append((now, ttft_ms, tokens_per_s))
        elif outcome == ERROR:
            self.breaker.failure(now)
        else:
            self.breaker.release()

    def _count(self, outcome: int, step: int) -> None:
        if outcome != RATE_LIMITED:
            self.recent_counted += step
            if outcome == ERROR:
                self.recent_errors += step

    def _trim(self, now: float) -> None:
        recent = self.recent
        while recent and now - recent[0][0] > OUTAGE_WINDOW:
            self._count(recent.popleft()[1], -1)

    def in_outage(self, now: float) -> bool:
        self._trim(now)
        errors = self.recent_errors
        significant = (errors >= self.settings.outage_min_errors
                       and errors >= self.settings.outage_error_share * self.recent_counted)
        return significant or self.breaker.state == OPEN

    def rate_limited(self, now: float) -> bool:
        return now < self.retry_at

    def counts(self, seconds: int, now: float) -> tuple[int, int, int]:
        first = int((now - seconds) // 60) + 1
        ok = errors = limited = 0
        for minute, a, b, c in reversed(self.minutes):
            if minute < first:
                break
            ok, errors, limited = ok + a, errors + b, limited + c
        return ok, errors, limited

    def uptime(self, seconds: int, now: float) -> float | None:
        ok, errors, _ = self.counts(seconds, now)
        return round(100.0 * ok / (ok + errors), 2) if ok + errors else None

    def percentiles(self, which: int, seconds: int, now: float) -> dict[str, float] | None:
        values = sorted(v for s in self.samples if now - s[0] <= seconds and (v := s[which]) is not None)
        if not values:
            return None
        last = len(values) - 1
        return {f"p{p}": round(values[min(last, int(p / 100 * len(values)))], 2) for p in (50, 75, 90, 99)}

    def status(self, now: float) -> int:
        """OpenRouter's endpoint status integer: 0 healthy; negative degraded (routeway's meanings are in
        the README: -1 recent outage, -2 half-open, -3 rate limited, -5 breaker open)."""
        if self.breaker.state == OPEN:
            return -5
        if self.rate_limited(now):
            return -3
        if self.breaker.state != "closed":
            return -2
        return -1 if self.in_outage(now) else 0


class Health:
    def __init__(self, settings: HealthSettings | None = None) -> None:
        self.settings = settings or HealthSettings()
        self.endpoints: dict[str, EndpointHealth] = {}

    def of(self, key: str) -> EndpointHealth:
        health = self.endpoints.get(key)
        if health is None:
            health = self.endpoints[key] = EndpointHealth(key, self.settings)
        return health

    def restore(self, key: str, minute: int, ok: int, errors: int, rate_limited: int) -> None:
        health = self.of(key)
        health.minutes.append([minute, ok, errors, rate_limited])


def now() -> float:
    return time.time()
