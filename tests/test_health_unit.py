"""Health windows, outage detection, percentiles and the breaker's state machine."""

from __future__ import annotations

from routeway.routing.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from routeway.routing.health import ERROR, OK, RATE_LIMITED, EndpointHealth, HealthSettings


def test_uptime_windows_exclude_rate_limits() -> None:
    h = EndpointHealth("p/m", HealthSettings())
    t = 1_000_000.0
    h.record(ERROR, t - 3000)  # 50 minutes ago: only in the 1-day window
    for _ in range(3):
        h.record(OK, t - 10)
    h.record(RATE_LIMITED, t - 5)
    assert h.uptime(300, t) == 100.0
    assert h.uptime(86400, t) == 75.0
    assert h.uptime(300, t + 7200) is None


def test_outage_needs_several_recent_errors_making_up_half() -> None:
    h = EndpointHealth("p/m", HealthSettings(breaker_threshold=100))
    t = 500.0
    for i in range(2):
        h.record(ERROR, t + i)
    assert not h.in_outage(t + 2)
    h.record(ERROR, t + 3)
    assert h.in_outage(t + 3)
    for i in range(4):
        h.record(OK, t + 4 + i)
    assert not h.in_outage(t + 8)  # 3 errors of 7
    assert not h.in_outage(t + 40)  # out of the 30 s window


def test_percentiles_over_the_window() -> None:
    h = EndpointHealth("p/m", HealthSettings())
    for i in range(100):
        h.record(OK, 1000.0 + i, ttft_ms=float(i), tokens_per_s=float(100 - i))
    ttft = h.percentiles(1, 1800, 1100.0)
    assert ttft == {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p99": 99.0}
    assert h.percentiles(1, 10, 1100.0) == {"p50": 95.0, "p75": 97.0, "p90": 99.0, "p99": 99.0}
    assert h.percentiles(1, 1800, 999999.0) is None


def test_breaker_cycle() -> None:
    b = Breaker(threshold=2, cooldown=10)
    b.failure(0)
    assert b.state == CLOSED
    b.failure(1)
    assert b.state == OPEN and not b.available(5) and not b.acquire(5)
    assert b.available(11) and b.acquire(11) and b.state == HALF_OPEN
    assert not b.available(11) and not b.acquire(11)  # one probe at a time
    b.failure(12)
    assert b.state == OPEN and not b.available(20)
    assert b.acquire(22)
    b.success()
    assert b.state == CLOSED and b.failures == 0 and b.acquire(22)
