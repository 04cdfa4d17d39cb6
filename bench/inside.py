"""routeway's own view of a run, from its /metrics before and after: group commits (how many, how many
writes each carried, how long they took, fsync included) and how late its event loop ran due timers.

Histogram buckets give upper bounds, so quantiles read "≤ bound". This tells a slow disk (commits) apart
from a busy or stalled event loop (lag) when a latency tail needs explaining."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

COMMIT = "routeway_store_commit_seconds"
WRITES = "routeway_store_commit_writes"
LAG = "routeway_event_loop_lag_seconds"

Histogram = tuple[dict[float, float], float]  # cumulative count per bucket bound (+Inf included), sum


def scrape(port: int) -> dict[str, Histogram]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, Histogram] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (COMMIT, WRITES, LAG):
            continue
        buckets = {float(s.labels["le"]): s.value for s in family.samples if s.name.endswith("_bucket")}
        total = next((s.value for s in family.samples if s.name.endswith("_sum")), 0.0)
        out[family.name] = (buckets, total)
    return out


def _delta(before: Histogram | None, after: Histogram | None) -> tuple[list[tuple[float, float]], float]:
    """What a run added: cumulative counts per bound, in bound order, and the sum."""
    (b_buckets, b_sum), (a_buckets, a_sum) = before or ({}, 0.0), after or ({}, 0.0)
    return sorted((bound, count - b_buckets.get(bound, 0.0)) for bound, count in a_buckets.items()), a_sum - b_sum


def _quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    total = cumulative[-1][1] if cumulative else 0
    if not total:
        return None
    return next(bound for bound, count in cumulative if count >= q * total)


def view(before: dict[str, Histogram], after: dict[str, Histogram]) -> dict:
    commits, commit_sum = _delta(before.get(COMMIT), after.get(COMMIT))
    _, write_sum = _delta(before.get(WRITES), after.get(WRITES))
    lag, _ = _delta(before.get(LAG), after.get(LAG))
    n = commits[-1][1] if commits else 0
    ticks = lag[-1][1] if lag else 0
    on_time = next((count for bound, count in lag if bound >= 0.005), ticks)  # ticks at most 5 ms late
    return {
        "commits": int(n),
        "writes": int(write_sum),
        "writes_per_commit": round(write_sum / n, 2) if n else None,
        "commit_mean_ms": round(commit_sum / n * 1000, 3) if n else None,
        "commit_p50_ms": _ms(_quantile(commits, 0.5)),
        "commit_p99_ms": _ms(_quantile(commits, 0.99)),
        "commit_max_ms": _ms(_quantile(commits, 1.0)),
        "lag_ticks": int(ticks),
        "lag_ticks_over_5ms": int(ticks - on_time),
        "lag_max_ms": _ms(_quantile(lag, 1.0)),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
