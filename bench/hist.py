"""HDR histograms in microseconds: one constructor, one summary shape, encode/decode for passing between
processes (the load generator prints them base64-encoded; the runner decodes, compares and plots)."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 300_000_000  # 300 s: anything slower is a failure, not a latency
DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def encode(h: HdrHistogram) -> str:
    return h.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def summary(h: HdrHistogram) -> dict[str, Any]:
    """Percentiles in microseconds (None when nothing was recorded)."""
    count = h.get_total_count()
    out: dict[str, Any] = {"count": count}
    for p in PERCENTILES:
        out[_key(p)] = h.get_value_at_percentile(p) if count else None
    out["max"] = h.get_max_value() if count else None
    out["mean"] = round(h.get_mean_value(), 1) if count else None
    return out


def _key(p: float) -> str:
    return "p" + (f"{p:g}".replace(".", ""))  # p50, p90, p99, p999


def curve(h: HdrHistogram) -> tuple[list[float], list[float]]:
    """(percentile, value in ms) points for a latency-by-percentile plot."""
    xs: list[float] = []
    ys: list[float] = []
    if not h.get_total_count():
        return xs, ys
    for item in h.get_percentile_iterator(5):
        xs.append(item.percentile_level_iterated_to)
        ys.append(item.value_iterated_to / 1000.0)
    return xs, ys
