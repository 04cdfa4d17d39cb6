"""Turn the runs into results.json, results.md (tables, issue 6 targets) and PNG latency plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import targets_check

TARGET_ORDER = ("direct", "nginx", "routeway")


def ms(us: float | None, digits: int = 2) -> str:
    return "–" if us is None else f"{us / 1000:.{digits}f}"


def index(runs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["scenario"], r["target"]): r for r in runs}


def cpu_per(run: dict, who: str = "proxy", per: int | None = None) -> float | None:
    """CPU microseconds of one process per completed request (per ``per`` units when given)."""
    n = per if per is not None else run["completed"]
    cpu = run["cpu_s"].get(who)
    return None if cpu is None or not n else cpu / n * 1e6


def added(run: dict, floor: dict | None, metric: str, p: str) -> float | None:
    if floor is None:
        return None
    a, b = run["summary"][metric][p], floor["summary"][metric][p]
    return None if a is None or b is None else a - b


def errors(run: dict) -> int:
    return sum(run["errors"].values()) + run.get("incomplete_streams", 0)


def latency_table(ix: dict, names: list[str]) -> list[str]:
    rows = ["| scenario | target | achieved req/s | p50 | p90 | p99 | p99.9 | added p50 | added p90 | added p99 "
            "| errors | proxy CPU µs/req |", "|" + "---|" * 12]
    for name in names:
        floor = ix.get((name, "direct"))
        for t in TARGET_ORDER:
            r = ix.get((name, t))
            if r is None:
                continue
            s = r["summary"]["total"]
            cpu = cpu_per(r) if t != "direct" else None
            rows.append(f"| {name} | {t} | {r['throughput']:,.0f} | {ms(s['p50'])} | {ms(s['p90'])} | {ms(s['p99'])} "
                        f"| {ms(s['p999'])} | {ms(added(r, floor, 'total', 'p50'))} | {ms(added(r, floor, 'total', 'p90'))} "
                        f"| {ms(added(r, floor, 'total', 'p99'))} | {errors(r)} | {f'{cpu:.0f}' if cpu else '–'} |")
    return rows


def saturation_table(ix: dict) -> list[str]:
    rows = ["| target | max req/s | ratio to nginx | proxy CPU use | of which event-loop thread | mock CPU use "
            "| load-gen CPU use | proxy CPU µs/req | capacity at 1 core (from CPU/req) | p50 | p99 |", "|" + "---|" * 11]
    nginx = ix.get(("saturation", "nginx"))
    for t in TARGET_ORDER:
        r = ix.get(("saturation", t))
        if r is None:
            continue
        el = r["elapsed"] or 1
        ratio = f"{r['throughput'] / nginx['throughput']:.3f}" if nginx and t != "direct" else "–"
        proxy = r["cpu_s"].get("proxy")
        cpu = cpu_per(r) if proxy is not None else cpu_per(r, "mock")
        s = r["summary"]["service"]
        main = r.get("main_thread_cpu_s", {}).get("proxy")
        rows.append(f"| {t} | {r['throughput']:,.0f} | {ratio} | {f'{proxy / el:.0%}' if proxy is not None else '–'} "
                    f"| {f'{main / el:.0%}' if main is not None else '–'} "
                    f"| {r['cpu_s']['mock'] / el:.0%} | {r['client_cpu_util']:.0%} | {cpu:.1f} "
                    f"| {1e6 / cpu:,.0f}{' (mock)' if proxy is None else ''} | {ms(s['p50'])} | {ms(s['p99'])} |")
    return rows


def stream_table(ix: dict, name: str, chunks: int) -> list[str]:
    rows = ["| target | streams done | peak open | TTFB p50 | TTFT p50 | TTFT p99 | added TTFT p50 | added TTFT p99 "
            "| gap p50 | gap p99 | max gap | incomplete | stalled | proxy CPU µs/stream | µs/chunk | peak RSS MB |",
            "|" + "---|" * 16]
    floor = ix.get((name, "direct"))
    for t in TARGET_ORDER:
        r = ix.get((name, t))
        if r is None:
            continue
        s, g = r["summary"], r["summary"]["gap"]
        cpu = cpu_per(r) if t != "direct" else None
        plain = ix.get(("rate-1000", t))
        per_chunk = (cpu - cpu_per(plain)) / chunks if cpu and plain and cpu_per(plain) else None
        rss = r["peak_rss_kb"].get("proxy")
        rows.append(f"| {t} | {r['completed']}/{r['sent']} | {r['peak_inflight']} | {ms(s['ttfb']['p50'])} "
                    f"| {ms(s['ttft']['p50'])} | {ms(s['ttft']['p99'])} | {ms(added(r, floor, 'ttft', 'p50'))} "
                    f"| {ms(added(r, floor, 'ttft', 'p99'))} | {ms(g['p50'])} | {ms(g['p99'])} | {r['max_gap_ms']:.1f} "
                    f"| {r['incomplete_streams']} | {r['stalled_streams']} | {f'{cpu:.0f}' if cpu else '–'} "
                    f"| {f'{per_chunk:.1f}' if per_chunk is not None else '–'} | {f'{rss / 1024:.0f}' if rss else '–'} |")
    return rows


def inside_table(runs: list[dict]) -> list[str]:
    rows = ["| scenario | group commits | writes per commit | commit mean | commit p50 | commit p99 | commit max "
            "| loop timer ticks | ticks over 5 ms late | loop lag max |", "|" + "---|" * 10]
    le = (lambda v: "–" if v is None else f"≤ {v:g}")
    for r in runs:
        v = r.get("inside")
        if r["target"] != "routeway" or not v:
            continue
        rows.append(f"| {r['scenario']} | {v['commits']:,} | {v['writes_per_commit'] or '–'} "
                    f"| {v['commit_mean_ms'] if v['commit_mean_ms'] is not None else '–'} | {le(v['commit_p50_ms'])} "
                    f"| {le(v['commit_p99_ms'])} | {le(v['commit_max_ms'])} | {v['lag_ticks']} "
                    f"| {v['lag_ticks_over_5ms']} | {le(v['lag_max_ms'])} |")
    return rows


def noise_lines(runs: list[dict]) -> list[str]:
    noisy = [f"{r['scenario']}/{r['target']} ({r['other_cpu_s'] / max(r['elapsed'], 0.1):.0%} of a core)"
             for r in runs if r["other_cpu_s"] > 0.1 * max(r["elapsed"], 0.1)]
    if not noisy:
        return ["Other processes used under 10% of a core during every run: timings should be clean."]
    return ["Other processes on the machine used more than 10% of a core during: " + ", ".join(noisy)
            + ". Those numbers may be noisy."]


def write_markdown(results: dict, out: Path) -> None:
    ix = index(results["runs"])
    m = results.get("machine", {})
    pin = results["pinning"]
    names = [s["name"] for s in results["scenarios"]]
    lines = [f"# routeway benchmark {results['started']}", "",
             f"Command: `{results['command']}` ({'quick' if results['quick'] else 'full'} run, {results['wall_s']} s); "
             f"routeway durability: {results.get('durability', 'full')}, routeway on Python "
             f"{results.get('routeway_python', 'as below')} (bench/README.md)", "",
             f"Machine: {m.get('nproc')} CPUs ({m.get('cpu_model')}), {m.get('mem_gib')} GiB, Linux {m.get('kernel')}, "
             f"Python {m.get('python')}, {m.get('nginx')}, routeway {m.get('routeway_commit')}"
             f"{' (src/ modified)' if m.get('routeway_tree_dirty') else ''}; "
             f"load average {m.get('loadavg_at_start')} at start, {results.get('finished_load')} at end.", "",
             f"Pinning: proxy under test (nginx or routeway, one process, one worker) on CPU {pin['proxy']}; "
             f"mock upstream on CPU {pin['mock']}; load generator on CPU {pin['client']}.", "",
             "Latencies in ms, measured from each request's intended send time (open loop); "
             "\"added\" = this row's percentile minus the floor's percentile in the same scenario.", "",
             "## Issue 6 targets (routeway)", ""] + targets_check.table(targets_check.check(ix)) + [""]
    rates = [n for n in names if n.startswith("rate-")]
    if rates:
        lines += ["## Non-streaming chat at fixed rates", ""] + latency_table(ix, rates) + [""]
    if "saturation" in names:
        lines += ["## Saturation (closed loop, 64 connections)", ""] + saturation_table(ix) + [""]
    for name in names:
        if name.startswith(("stream", "concurrent")):
            sc = next(s for s in results["scenarios"] if s["name"] == name)
            lines += [f"## {name}: {sc['expect_chunks']} chunks per answer (mock model `{sc['model']}`), "
                      f"{sc['rate']:g} streams/s for {sc['duration']:g} s", ""] + stream_table(ix, name, sc["expect_chunks"]) + [
                      "", "µs/chunk = (proxy CPU per stream − its CPU per non-streaming request at 1,000 req/s) "
                      "/ chunks per stream.", ""]
    peak = {t: max((r["peak_rss_kb"].get("proxy", 0) for r in results["runs"] if r["target"] == t), default=0)
            for t in ("nginx", "routeway")}
    if any(r.get("inside") for r in results["runs"]):
        lines += ["## routeway's own view (its /metrics, before and after each run)", "",
                  "Group commits carry the generation and charge rows of the requests that finished meanwhile "
                  "(fsync included with `durability = \"full\"`); the loop lag samples how late a 250 ms timer "
                  "ran. Times in ms; histogram buckets give upper bounds.", ""] + inside_table(results["runs"]) + [""]
    lines += ["## Memory", "", f"Peak RSS over the whole run: routeway {peak['routeway'] / 1024:.0f} MB, "
              f"nginx {peak['nginx'] / 1024:.0f} MB.", "", "## Noise", ""] + noise_lines(results["runs"])
    if results.get("profile"):
        lines += ["", "## Profile (py-spy, routeway at 1,000 req/s non-streaming)", ""] + profile_lines(results["profile"])
    lines += ["", "Plots: " + ", ".join(f"`{p.name}`" for p in sorted(out.glob("*.png")))]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def profile_lines(p: dict) -> list[str]:
    if "error" in p:
        return [p["error"]]
    load = p.get("load", {})
    lines = [f"{p['samples']} samples over every thread (idle excluded) while routeway served "
             f"{load.get('throughput')} req/s.", "", "Self time by function (where the CPU is):", "",
             "| function | share |", "|---|---|"]
    lines += [f"| `{e['function']}` | {e['share']:.1%} |" for e in p["self"][:15]]
    lines += ["", "Self time by package:", "", "| package | share |", "|---|---|"]
    lines += [f"| `{e['function']}` | {e['share']:.1%} |" for e in p.get("packages", [])[:10]]
    lines += ["", "Inclusive time of routeway's functions (what the work is for):", "", "| function | share |", "|---|---|"]
    lines += [f"| `{e['function']}` | {e['share']:.1%} |" for e in p["inclusive"][:15]]
    return lines


def write(results: dict, out: Path) -> None:
    import plots  # matplotlib is imported only here

    ix = index(results["runs"])
    results["targets"] = targets_check.check(ix)
    plots.draw(results, out)
    write_markdown(results, out)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=_jsonable))


def _jsonable(value: Any) -> Any:
    return str(value)
