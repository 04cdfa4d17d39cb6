"""A circuit breaker per endpoint: opens after consecutive failures, lets one probe through after a
cool-down (half-open), closes on that probe's success.

Hand-written rather than pybreaker/aiobreaker: those wrap a call and keep their own clock and state
store, while routing needs to *ask* (is this endpoint available?) when planning, separately from
*taking* the half-open probe slot when an attempt starts. The whole thing is a few counters.
"""

from __future__ import annotations

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Breaker:
    __slots__ = ("threshold", "cooldown", "state", "failures", "opened_at", "probing")

    def __init__(self, threshold: int = 5, cooldown: float = 30.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.state = CLOSED
        self.failures = 0  # consecutive
        self.opened_at = 0.0
        self.probing = False

    def available(self, now: float) -> bool:
        """Would an attempt be let through now? Does not change state."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return now - self.opened_at >= self.cooldown
        return not self.probing

    def acquire(self, now: float) -> bool:
        """Called as an attempt starts; in half-open only one attempt (the probe) gets through."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if now - self.opened_at < self.cooldown:
                return False
            self.state = HALF_OPEN
        if self.probing:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.state, self.failures, self.probing = CLOSED, 0, False

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            self.state, self.opened_at, self.probing = OPEN, now, False

    def release(self) -> None:
        """An attempt that ended neither in success nor failure (e.g. the client left) frees the probe."""
        self.probing = False
