"""GET /metrics: the store's group commits and the event loop's lag, as Prometheus histograms."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Account


def scrape(account: Account) -> dict[str, float]:
    text = httpx.get(account.gateway.url + "/metrics").text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_each_recorded_request_is_one_write_in_a_timed_group_commit(account: Account) -> None:
    before = scrape(account)
    for _ in range(3):
        reply = account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        assert reply.status_code == 200, reply.text
    after = scrape(account)
    commits = after["routeway_store_commit_seconds_count"] - before["routeway_store_commit_seconds_count"]
    writes = after["routeway_store_commit_writes_sum"] - before["routeway_store_commit_writes_sum"]
    assert 1 <= commits <= writes and writes >= 3  # a generation + its charge travel as one write
    assert after["routeway_store_commit_seconds_sum"] > before["routeway_store_commit_seconds_sum"]
    assert after["routeway_store_commit_seconds_bucket{le=+Inf}"] == after["routeway_store_commit_seconds_count"]


def test_event_loop_lag_is_sampled_while_idle(account: Account) -> None:
    first = scrape(account)
    began = time.monotonic()
    time.sleep(0.6)  # sampled every 0.25 s
    samples = scrape(account)
    between = time.monotonic() - began
    assert samples["routeway_event_loop_lag_seconds_count"] >= first["routeway_event_loop_lag_seconds_count"] + 2
    assert samples["routeway_event_loop_lag_seconds_bucket{le=+Inf}"] == samples["routeway_event_loop_lag_seconds_count"]
    # a lag is how late a wake-up came, not a timestamp or an interval: the lags sampled between two
    # scrapes add up to less than the time between them (plus the one sample that may straddle the first)
    lag = samples["routeway_event_loop_lag_seconds_sum"] - first["routeway_event_loop_lag_seconds_sum"]
    assert 0 <= lag < between + 0.25


def test_the_benchmark_reads_its_view_of_a_run_from_metrics(account: Account) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import inside  # bench/inside.py: what bench/run.py puts in results.md's "own view" table

    port = int(account.gateway.url.rsplit(":", 1)[1])
    before = inside.scrape(port)
    for _ in range(4):
        assert account.chat({"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    view = inside.view(before, inside.scrape(port))
    assert 1 <= view["commits"] <= view["writes"] and view["writes"] >= 4
    assert view["writes_per_commit"] == round(view["writes"] / view["commits"], 2)
    assert 0 < view["commit_mean_ms"] <= view["commit_max_ms"] and view["commit_p50_ms"] <= view["commit_max_ms"]
