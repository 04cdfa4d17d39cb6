"""GET /metrics: the store's group commits and the event loop's lag, as Prometheus histograms."""

from __future__ import annotations

import time

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
    first = scrape(account)["routeway_event_loop_lag_seconds_count"]
    time.sleep(0.6)  # sampled every 0.25 s
    samples = scrape(account)
    assert samples["routeway_event_loop_lag_seconds_count"] >= first + 2
    # an idle loop is never a second late
    assert samples["routeway_event_loop_lag_seconds_bucket{le=1.0}"] == samples["routeway_event_loop_lag_seconds_count"]
