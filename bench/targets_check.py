"""Issue 6's targets, checked against one run: measured value, target, met or missed and by how much."""

from __future__ import annotations

from typing import Any


def _pct(ix: dict, scenario: str, target: str, metric: str, p: str) -> float | None:
    run = ix.get((scenario, target))
    return None if run is None else run["summary"][metric][p]


def _added(ix: dict, scenario: str, metric: str, p: str) -> float | None:
    a, b = _pct(ix, scenario, "routeway", metric, p), _pct(ix, scenario, "direct", metric, p)
    return None if a is None or b is None else (a - b) / 1000.0  # ms


def _item(name: str, value: float | None, limit: float, unit: str, higher_is_better: bool = False,
          note: str = "") -> dict[str, Any]:
    if value is None:
        return {"target": name, "value": None, "limit": limit, "unit": unit, "met": None, "verdict": "not measured",
                "note": note}
    met = value >= limit if higher_is_better else value <= limit
    if higher_is_better:
        verdict = (f"met ({value / limit:.2f}× the target)" if met
                   else f"missed: {value / limit:.2f}× the target ({limit - value:,.3g}{' ' + unit if unit else ''} short)")
    elif met:
        verdict = f"met ({limit - value:,.3g} {unit} to spare)"
    else:
        verdict = f"missed by {value - limit:,.3g} {unit} ({value / limit:.1f}× the limit)" if limit else "missed"
    return {"target": name, "value": value, "limit": limit, "unit": unit, "met": met, "verdict": verdict, "note": note}


def check(ix: dict) -> list[dict[str, Any]]:
    items = [
        _item("added latency p50 at 1,000 req/s ≤ 0.5 ms", _added(ix, "rate-1000", "total", "p50"), 0.5, "ms"),
        _item("added latency p99 at 1,000 req/s ≤ 2 ms", _added(ix, "rate-1000", "total", "p99"), 2.0, "ms"),
    ]
    sat, nginx = ix.get(("saturation", "routeway")), ix.get(("saturation", "nginx"))
    items.append(_item("saturation ≥ 4,000 req/s (one worker)", sat["throughput"] if sat else None, 4000, "req/s", True))
    ratio = sat["throughput"] / nginx["throughput"] if sat and nginx and nginx["throughput"] else None
    bound = ""
    if nginx and nginx["cpu_s"].get("proxy") is not None and nginx["elapsed"]:
        use = nginx["cpu_s"]["proxy"] / nginx["elapsed"]
        if use < 0.9:
            cap = nginx["throughput"] / use if use else 0
            bound = (f"nginx used only {use:.0%} of its core: the mock and load generator sharing one core were the limit, "
                     f"so this ratio flatters routeway; against nginx's CPU-bound capacity (~{cap:,.0f} req/s) "
                     f"the ratio is {sat['throughput'] / cap:.3f}" if sat and cap else "")
    items.append(_item("saturation ≥ 0.10 of nginx's in the same run", ratio, 0.10, "", True, bound))
    items.append(_item("added time to first token p50 ≤ 1 ms (streaming)", _added(ix, "stream-200", "ttft", "p50"), 1.0, "ms"))
    items.append(_item("per-chunk relay cost ≤ 20 µs", chunk_cost(ix), 20.0, "µs",
                       note="(routeway CPU per 200-chunk stream − CPU per non-streaming request) / 200"))
    conc = ix.get(("concurrent-1000", "routeway"))
    bad = None if conc is None else conc["stalled_streams"] + conc["incomplete_streams"] + sum(conc["errors"].values())
    items.append(_item("1,000 concurrent streams: no stalls", bad, 0, "streams stalled, cut or failed",
                       note=f"max gap {conc['max_gap_ms']:.0f} ms, peak {conc['peak_inflight']} open" if conc else ""))
    rss = conc["peak_rss_kb"].get("proxy") / 1024 if conc else None
    items.append(_item("1,000 concurrent streams: peak RSS ≤ 250 MB", rss, 250, "MB"))
    items.append(_item("no database round trip on the request path", None, 0, "",
                       note="not measurable from outside; see the py-spy profile"))
    inside = (sat or {}).get("inside") or {}
    grouped = inside.get("writes_per_commit")
    items.append(_item("generation records durable by group commit (writes per commit at saturation ≥ 2)", grouped,
                       2.0, "", True, note=f"{inside['commits']:,} commits carried {inside['writes']:,} writes; "
                       f"mean commit {inside['commit_mean_ms']} ms, fsync included" if grouped else
                       "from routeway's /metrics"))
    return items


def chunk_cost(ix: dict) -> float | None:
    stream, plain = ix.get(("stream-200", "routeway")), ix.get(("rate-1000", "routeway"))
    if not stream or not plain or not stream["completed"] or not plain["completed"]:
        return None
    per_stream = stream["cpu_s"]["proxy"] / stream["completed"] * 1e6
    per_request = plain["cpu_s"]["proxy"] / plain["completed"] * 1e6
    return (per_stream - per_request) / 200


def table(items: list[dict[str, Any]]) -> list[str]:
    rows = ["| target | measured | verdict | note |", "|---|---|---|---|"]
    for i in items:
        v = i["value"]
        shown = "–" if v is None else (f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}") + (f" {i['unit']}" if i["unit"] else "")
        rows.append(f"| {i['target']} | {shown} | {i['verdict']} | {i['note']} |")
    return rows
