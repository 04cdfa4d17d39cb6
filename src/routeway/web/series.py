"""Chart data for the dashboard's charts (static/charts.js draws them with uPlot).

A chart is a plain dict: ``{"kind": "line" | "bars", "x": [unix seconds], "series": [{"label", "values"}],
"unit": ..., "empty": bool}``. Endpoint history comes from the ``endpoint_minutes`` table and is overlaid
with the live in-memory health of this process (the minutes not yet flushed, and this minute's samples).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from routeway.interfaces import HealthRegistry
from routeway.ledger.periods import period_start_ms

DAY_S = 86_400

Minute = list[Any]  # [ok, errors, ttft_p50_ms | None, tps_p50 | None]


def chart(kind: str, x: Sequence[int], series: list[dict[str, Any]], unit: str = "", **extra: Any) -> dict[str, Any]:
    empty = not x or all(v is None or (v == 0 and unit != "%") for s in series for v in s["values"])
    return {"kind": kind, "x": list(x), "series": series, "unit": unit, "empty": empty, **extra}


def day_range(until_ms: int, days: int) -> list[int]:
    last = until_ms // (DAY_S * 1000)
    return list(range(last - days + 1, last + 1))


def daily(rows: Iterable[tuple[int, ...]], days: list[int], columns: dict[str, tuple[int, str]],
          scale: dict[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """Per-day rows ``(day, a, b, ...)`` → one bar chart per named column, missing days as zero."""
    by_day = {row[0]: row for row in rows}
    x = [d * DAY_S for d in days]
    charts = {}
    for name, (index, label) in columns.items():
        factor = (scale or {}).get(name, 1.0)
        values = [(round(by_day[d][index] * factor, 9) if factor != 1.0 else by_day[d][index]) if d in by_day else 0
                  for d in days]
        charts[name] = chart("bars", x, [{"label": label, "values": values}], unit=name, daily=True)
    return charts


def stacked_days(rows: Iterable[tuple[str, int, int]], names: list[str], days: list[int],
                 label: Callable[[str], str]) -> dict[str, Any]:
    """(name, day, value) rows → one line per name over the days: the rankings chart."""
    values: dict[str, dict[int, int]] = defaultdict(dict)
    for name, day, value in rows:
        values[name][day] = value
    series = [{"label": label(n), "values": [values[n].get(d, 0) for d in days]} for n in names]
    return chart("line", [d * DAY_S for d in days], series, unit="tokens", daily=True)


def budget_spend(limit_usd: float, reset: str | None, keys: list[tuple[str, str]], days: list[int],
                 charged: dict[str, dict[int, int]], before: dict[str, int]) -> dict[str, Any]:
    """One line per key ``(label, hash)``: its spend in the budget's window as of each day's end (the window
    restarts at each reset, or runs from the first charge for a lifetime budget), against the budget's line.
    ``charged`` is key hash -> day -> nano-USD, from at least the first shown day's window start on."""
    series = [{"label": "Budget", "values": [limit_usd for _ in days]}]
    for label, key_hash in keys:
        by_day = charged.get(key_hash, {})
        values = []
        for day in days:
            start = (period_start_ms(reset, day * DAY_S * 1000) // (DAY_S * 1000)) if reset else None
            spent = sum(n for d, n in by_day.items() if d <= day and (start is None or d >= start))
            if start is None:
                spent += before.get(key_hash, 0)
            values.append(round(spent / 1e9, 9))
        series.append({"label": label, "values": values})
    return chart("line", [d * DAY_S for d in days], series, unit="spend", daily=True)


def endpoint_history(rows: Iterable[tuple[Any, ...]], health: HealthRegistry, endpoints: Sequence[str],
                     since_minute: int) -> dict[str, dict[int, Minute]]:
    """endpoint → minute → [ok, errors, ttft, tps], the store's rows with live memory laid over them."""
    merged: dict[str, dict[int, Minute]] = {e: {} for e in endpoints}
    for endpoint, minute, ok, errors, ttft, tps in rows:
        if endpoint in merged:
            merged[endpoint][int(minute)] = [int(ok), int(errors), ttft, tps]
    for endpoint in endpoints:
        live = health.endpoints.get(endpoint)
        if live is None:
            continue
        for minute, ok, errors, _limited in list(live.minutes):
            if minute >= since_minute:
                entry = merged[endpoint].setdefault(minute, [0, 0, None, None])
                entry[0], entry[1] = ok, errors
        samples: dict[int, list[tuple[float, float | None]]] = defaultdict(list)
        for at, ttft, tps in list(live.samples):
            if at // 60 >= since_minute:
                samples[int(at // 60)].append((ttft, tps))
        for minute, values in samples.items():
            entry = merged[endpoint].setdefault(minute, [0, 0, None, None])
            entry[2] = round(statistics.median(v[0] for v in values), 1)
            rates = [v[1] for v in values if v[1] is not None]
            if rates:
                entry[3] = round(statistics.median(rates), 1)
    return merged


def performance(history: dict[str, dict[int, Minute]], labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Time to first token and throughput per minute with measurements, one line per provider."""
    minutes = sorted({m for per in history.values() for m, v in per.items() if v[2] is not None or v[3] is not None})
    out = {}
    for name, index, unit in (("ttft", 2, "ms"), ("tps", 3, "tok/s")):
        series = [{"label": labels[e], "values": [per.get(m, [0, 0, None, None])[index] for m in minutes]}
                  for e, per in history.items()]
        out[name] = chart("line", [m * 60 for m in minutes], series, unit=unit)
    return out


def uptime(history: dict[str, dict[int, Minute]], labels: dict[str, str], now_s: float,
           hours: int = 72) -> dict[str, Any]:
    """Share of successful requests per hour and provider (429s excluded), None for hours without traffic."""
    last = int(now_s // 3600)
    span = list(range(last - hours + 1, last + 1))
    series = []
    for endpoint, per in history.items():
        ok: dict[int, int] = defaultdict(int)
        bad: dict[int, int] = defaultdict(int)
        for minute, (a, b, _, _) in per.items():
            ok[minute // 60] += a
            bad[minute // 60] += b
        values = [round(100.0 * ok[h] / (ok[h] + bad[h]), 2) if ok[h] + bad[h] else None for h in span]
        series.append({"label": labels[endpoint], "values": values})
    return chart("line", [h * 3600 for h in span], series, unit="%", y_range=[0, 100])
