"""GET /metrics: Prometheus text. Health and credit figures are read at scrape time (nothing on the hot
path); the store's commit histograms are observed once per group commit, the loop's lag four times a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from routeway.api.http import Request, Response
from routeway.routing.breaker import CLOSED, HALF_OPEN, OPEN

if TYPE_CHECKING:
    from routeway.services import Services

_BREAKER_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class HealthCollector:
    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        outcomes = CounterMetricFamily("routeway_endpoint_outcomes", "Upstream outcomes in the last day",
                                       labels=["endpoint", "outcome"])
        breaker = GaugeMetricFamily("routeway_endpoint_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                                    labels=["endpoint"])
        uptime = GaugeMetricFamily("routeway_endpoint_uptime_30m", "Uptime percent over 30 minutes",
                                   labels=["endpoint"])
        ttft = GaugeMetricFamily("routeway_endpoint_ttft_ms", "Time to first token over 30 minutes",
                                 labels=["endpoint", "quantile"])
        for key, health in self.services.health.endpoints.items():
            ok, errors, limited = health.counts(86400, now)
            for name, value in (("ok", ok), ("error", errors), ("rate_limited", limited)):
                outcomes.add_metric([key, name], value)
            breaker.add_metric([key], _BREAKER_VALUES[health.breaker.state])
            up = health.uptime(1800, now)
            if up is not None:
                uptime.add_metric([key], up)
            for quantile, ms in (health.percentiles(1, 1800, now) or {}).items():
                ttft.add_metric([key, quantile], ms)
        yield from (outcomes, breaker, uptime, ttft)
        accounts = self.services.accounts.all()
        reserved = GaugeMetricFamily("routeway_reserved_usd", "Credit reserved by requests in flight")
        reserved.add_metric([], sum(a.reserved for a in accounts) / 1e9)
        yield reserved
        rejected = CounterMetricFamily(
            "routeway_usage_rejected", "Upstream answers whose usage was not billed as reported: capped to what the"
            " request could produce, or rejected as negative, not an integer or not an object",
            labels=["provider", "reason"])
        for (provider, reason), count in sorted(self.services.usage_rejections.items()):
            rejected.add_metric([provider, reason], count)
        yield rejected
        yield from self._local_models()
        yield from self._shared_state()

    def _shared_state(self) -> Iterator[Metric]:
        """Redis (``[shared] redis``): 1 while it is away and limits, health and sessions are per process."""
        if self.services.shared is None:
            return
        link = self.services.shared.link
        degraded = GaugeMetricFamily("routeway_shared_state_degraded", "1 while Redis is unreachable and rate limits,"
                                     " endpoint health and dashboard sessions are per process")
        degraded.add_metric([], int(link.degraded))
        failures = CounterMetricFamily("routeway_shared_state_failures", "Redis calls that failed or timed out")
        failures.add_metric([], link.failures)
        spells = CounterMetricFamily("routeway_shared_state_degraded_spells", "Times Redis went away")
        spells.add_metric([], link.degraded_spells)
        yield from (degraded, failures, spells)

    def _local_models(self) -> Iterator[Metric]:
        """Each local model's worker process (providers/local_worker.py): loaded, queue, restarts."""
        ready = GaugeMetricFamily("routeway_local_worker_ready", "1 while a local model's worker is loaded",
                                  labels=["provider"])
        queued = GaugeMetricFamily("routeway_local_queue_depth", "Requests waiting for a local model",
                                   labels=["provider"])
        busy = GaugeMetricFamily("routeway_local_worker_busy", "1 while a local model answers a request",
                                 labels=["provider"])
        restarts = CounterMetricFamily("routeway_local_worker_restarts", "Worker processes of a local model that died"
                                       " and were restarted", labels=["provider"])
        generated = CounterMetricFamily("routeway_local_generated_tokens", "Tokens a local model generated, for"
                                        " cancelled requests too (a cancel stops the count)", labels=["provider"])
        evaluated = CounterMetricFamily("routeway_local_evaluated_tokens", "Tokens a local model evaluated: prompts"
                                        " (less what its cache held) and generated tokens", labels=["provider"])
        for name, adapter in sorted(self.services.adapters.items()):
            worker = getattr(adapter, "worker", None)
            if worker is not None:
                state = worker.snapshot()
                ready.add_metric([name], int(state["ready"]))
                queued.add_metric([name], state["queued"])
                busy.add_metric([name], int(state["busy"]))
                restarts.add_metric([name], state["restarts"])
                generated.add_metric([name], state["generated"])
                evaluated.add_metric([name], state["evaluated"])
        yield from (ready, queued, busy, restarts, generated, evaluated)


class LoopLag:
    """How late the event loop runs a timer that is due: work that holds the loop without yielding shows
    here as lag, which tells a stalled loop apart from a slow disk (the commit histogram) or upstream."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)  # loop timers tick in whole ms

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.histogram = Histogram("routeway_event_loop_lag_seconds", "How late the event loop ran a due timer",
                                   buckets=self.BUCKETS, registry=None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.histogram.observe(max(0.0, loop.time() - due))


def metrics_handler(services: Services) -> Any:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(services))
    registry.register(services.connection_stats)
    for histogram in (services.store.commit_seconds, services.store.commit_batches, services.loop_lag.histogram):
        registry.register(histogram)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), headers=[(b"content-type", b"text/plain; version=0.0.4")])

    return metrics
