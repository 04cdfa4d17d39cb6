"""Throughput of ``routeway serve --workers 1`` against ``--workers 2`` on this machine, in alternating runs.

    PYTHONPATH=src .venv/bin/python bench/workers.py                       # saturation, 6 runs of 4 s each
    PYTHONPATH=src .venv/bin/python bench/workers.py --runs 8 --connections 128

Both servers run at once on one mock upstream, unpinned (the point is to use every core); the runs
alternate 1, 2, 2, 1, … so that drift in a shared machine hits both. Each run is a closed loop of
``--connections`` clients (bench/loadgen.py) sending the small non-streaming chat of bench/README.md on
one key with a spending limit, so every request reserves and settles against credit leases in the
2-worker server. The load generator and the mock share the same cores: on two cores they take a part of
the CPU the workers could use, so the ratio is a lower bound of what the workers alone would do.
The machine's load (1-minute load average, and CPU used by other processes during each run) is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402
import targets as tg  # noqa: E402


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (a supervisor and its workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6, help="runs per side (default 6)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each run (default 4)")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="routeway-workers-run-"))
    mock = tg.start_mock(work, None)
    servers: dict[int, tg.Target] = {}
    rows: dict[int, list[dict]] = {1: [], 2: []}
    source = os.environ.get("PYTHONPATH")
    try:
        for workers in (1, 2):
            folder = work / f"w{workers}"
            folder.mkdir()
            servers[workers] = tg.start_routeway(folder, mock, ["mock"], None, "full", None,
                                                 Path(source) if source else None, extra_args=("--workers", str(workers)))
        sc = bench.Scenario("workers", "saturation", "mock", args.seconds, connections=args.connections,
                            saturate=True)
        warm = bench.Scenario("warmup", "rate", "mock", 1.0, rate=300)
        for server in servers.values():
            bench.measure(server, mock, warm, None)
        order = [w if k % 2 == 0 else 3 - w for k in range(args.runs) for w in (1, 2)]
        for workers in order:
            pid = servers[workers].pid
            assert pid is not None
            cpu0 = tree_cpu_seconds(pid)
            result = bench.measure(servers[workers], mock, sc, None, 1.0)
            cpu = tree_cpu_seconds(pid) - cpu0
            row = {"throughput": result["throughput"], "p50": result["summary"]["total"]["p50"] / 1000,
                   "errors": sum(result["errors"].values()), "other": result["other_cpu_s"],
                   "load": os.getloadavg()[0], "cpu_us": cpu / max(1, result["completed"]) * 1e6}
            rows[workers].append(row)
            print(f"--workers {workers}: {row['throughput']:,.0f} req/s  p50 {row['p50']:.2f} ms  "
                  f"CPU {row['cpu_us']:.0f} µs/request (all its processes)  "
                  f"errors {row['errors']}  load average {row['load']:.1f}  CPU-s of others {row['other']:.1f}",
                  flush=True)
    finally:
        for server in servers.values():
            server.stop()
        mock.stop()
    one = statistics.median(r["throughput"] for r in rows[1])
    two = statistics.median(r["throughput"] for r in rows[2])
    cpu_one = statistics.median(r["cpu_us"] for r in rows[1])
    cpu_two = statistics.median(r["cpu_us"] for r in rows[2])
    print(f"CPU per request, medians: 1 worker {cpu_one:.0f} µs, 2 workers {cpu_two:.0f} µs")
    print(f"medians: 1 worker {one:,.0f} req/s, 2 workers {two:,.0f} req/s: {two / one:.2f}x "
          f"({os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
