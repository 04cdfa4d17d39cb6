"""A/B two builds of routeway on one mock, in alternating runs, and compare medians.

    .venv/bin/python bench/ab.py                               # HEAD (A) against the working tree (B)
    .venv/bin/python bench/ab.py --a HEAD~3 --scenario saturation
    .venv/bin/python bench/ab.py --a-python /tmp/venv-3.13/bin/python --a WORKTREE   # two interpreters
    .venv/bin/python bench/ab.py --a WORKTREE --b-database-url postgresql://postgres@127.0.0.1/bench  # SQLite vs PostgreSQL
    .venv/bin/python bench/ab.py --a WORKTREE --b-env OTEL_TRACES_EXPORTER=otlp --otlp-sink   # traces off / on

A side given as a git revision runs from a temporary worktree of it (``PYTHONPATH=<worktree>/src``);
``WORKTREE`` means this checkout as it is. Both servers run at once, pinned like the full benchmark, and
the runs alternate A, B, B, A, … so that drift in the machine hits both. A single run of the full
benchmark cannot resolve a change of a few percent; the median of several paired runs can.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402
import targets as tg  # noqa: E402

WORKTREE = "WORKTREE"
STREAM_CHUNKS = 200
STREAM_MODEL = f"mock-s{STREAM_CHUNKS}-r200-d20"


@dataclass
class Side:
    name: str
    revision: str
    python: str | None
    database_url: str | None = None  # serve from this PostgreSQL database (None: SQLite)
    redis: str | None = None  # [shared] redis of this side's server
    source: Path | None = None  # a temporary worktree's src/, or None for this checkout
    env: dict[str, str] | None = None  # variables for this side's server alone (--a-env, --b-env)


def scenario(spec: str, seconds: float) -> bench.Scenario:
    kind, _, number = spec.partition("-")
    if spec == "saturation":
        return bench.Scenario("ab", "saturation", "mock", seconds, connections=64, saturate=True)
    if kind == "rate" and number.isdigit():
        return bench.Scenario("ab", "rate", "mock", seconds, rate=float(number),
                              connections=64 if float(number) > 1000 else 32)
    if kind == "stream" and number.isdigit():
        return bench.Scenario("ab", "stream", STREAM_MODEL, seconds, rate=float(number), stream=True,
                              expect_chunks=STREAM_CHUNKS, drain=15)
    raise SystemExit(f"unknown scenario {spec!r}: use rate-<req/s>, saturation or stream-<streams/s>")


def checkout(revision: str, root: Path) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="routeway-ab-"))
    done = subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(folder), revision],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cannot check out {revision!r}: {done.stderr.strip()}")
    return folder


def otlp_sink() -> str:
    """A receiver that answers every OTLP/HTTP export 200 (and counts the bytes), in a thread of this
    process (pinned to the client's CPU), so traced servers export as they would to a collector."""
    import http.server
    import threading

    class Sink(http.server.BaseHTTPRequestHandler):
        received = 0

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            Sink.received += len(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def measure_row(run: dict, streamed: bool) -> dict:
    summary = run["summary"]["ttft" if streamed else "total"]
    units = run["completed"] * (STREAM_CHUNKS if streamed else 1)
    return {"throughput": run["throughput"], "p50": summary["p50"] / 1000, "p90": summary["p90"] / 1000,
            "p99": summary["p99"] / 1000, "cpu_us": run["cpu_s"]["proxy"] / max(1, units) * 1e6,
            "errors": sum(run["errors"].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", default="HEAD", help="A: a git revision, or WORKTREE (default HEAD)")
    parser.add_argument("--b", default=WORKTREE, help="B: a git revision, or WORKTREE (default)")
    parser.add_argument("--a-python", default=None, help="interpreter for A (a venv's python with routeway's deps)")
    parser.add_argument("--b-python", default=None, help="interpreter for B")
    parser.add_argument("--scenario", default="rate-1000", help="rate-<req/s>, saturation or stream-<streams/s>")
    parser.add_argument("--runs", type=int, default=6, help="runs per side (default 6)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each run (default 4)")
    parser.add_argument("--durability", choices=("full", "normal"), default="full")
    parser.add_argument("--a-database-url", default=None, help="A serves from this PostgreSQL database, not SQLite")
    parser.add_argument("--b-database-url", default=None, help="B serves from this PostgreSQL database, not SQLite")
    parser.add_argument("--a-redis", default=None, help="A shares its state through this Redis ([shared] redis)")
    parser.add_argument("--b-redis", default=None, help="B shares its state through this Redis")
    parser.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE", help="a variable for A's server")
    parser.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE", help="a variable for B's server")
    parser.add_argument("--otlp-sink", action="store_true",
                        help="run an OTLP/HTTP receiver that takes every trace (OTEL_EXPORTER_OTLP_ENDPOINT for both)")
    args = parser.parse_args()

    root = Path(__file__).resolve().parents[1]
    sides = [Side("A", args.a, args.a_python, args.a_database_url, args.a_redis,
                  env=dict(v.split("=", 1) for v in args.a_env)),
             Side("B", args.b, args.b_python, args.b_database_url, args.b_redis,
                  env=dict(v.split("=", 1) for v in args.b_env))]
    if args.otlp_sink:
        sink = otlp_sink()
        for side in sides:
            side.env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink, **(side.env or {})}
    sc = scenario(args.scenario, args.seconds)
    pin = tg.pinning()
    if pin["client"] is not None:
        os.sched_setaffinity(0, {int(pin["client"])})
    work = Path(tempfile.mkdtemp(prefix="routeway-ab-run-"))
    servers: list[tg.Target] = []
    mock = tg.start_mock(work, pin["mock"])
    rows: dict[str, list[dict]] = {"A": [], "B": []}
    try:
        for side in sides:
            if side.revision != WORKTREE:
                side.source = checkout(side.revision, root) / "src"
            folder = work / side.name
            folder.mkdir()
            servers.append(tg.start_routeway(folder, mock, ["mock", STREAM_MODEL], pin["proxy"], args.durability,
                                             side.python, side.source, side.database_url, side.env,
                                             redis=side.redis))
        warm = bench.Scenario("warmup", "rate", "mock", 1.0, rate=500)
        order = [i if k % 2 == 0 else 1 - i for k in range(args.runs) for i in (0, 1)]
        with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn()) as progress:
            bar = progress.add_task("warm-up", total=len(order) + 2)
            for server in servers:
                bench.measure(server, mock, warm, pin["client"])
                progress.advance(bar)
            for i in order:
                side = sides[i]
                progress.update(bar, description=f"{args.scenario} / {side.name}")
                row = measure_row(bench.measure(servers[i], mock, sc, pin["client"], 1.0), sc.stream)
                rows[side.name].append(row)
                progress.console.print(f"{side.name} ({side.revision}): {row['throughput']:,.0f}/s  "
                                       f"p50 {row['p50']:.2f}  p99 {row['p99']:.2f} ms  "
                                       f"CPU {row['cpu_us']:.1f} µs/{'chunk' if sc.stream else 'request'}"
                                       f"  errors {row['errors']}", highlight=False)
                progress.advance(bar)
    finally:
        for server in servers:
            server.stop()
        mock.stop()
        for side in sides:
            if side.source is not None:
                subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(side.source.parent)],
                               capture_output=True)
    report(sides, rows, args, sc.stream)


def report(sides: list[Side], rows: dict[str, list[dict]], args: argparse.Namespace, streamed: bool) -> None:
    unit = "µs/chunk" if streamed else "µs/req"
    what = "TTFT" if streamed else "latency"
    table = Table(title=f"{args.scenario}, {args.runs} runs of {args.seconds:g} s per side, medians "
                        f"(durability {args.durability})")
    for column in ("side", "build", "req/s" if not streamed else "streams/s", f"{what} p50 ms", f"{what} p90 ms",
                   f"{what} p99 ms", f"CPU {unit}", f"CPU {unit}, each run"):
        table.add_column(column)
    medians = {}
    for side in sides:
        runs = rows[side.name]
        med = {k: statistics.median(r[k] for r in runs) for k in ("throughput", "p50", "p90", "p99", "cpu_us")}
        medians[side.name] = med
        build = side.revision + (f" on {side.python}" if side.python else "") + (
            " on PostgreSQL" if side.database_url else "") + (f", shared via {side.redis}" if side.redis else "") + "".join(
            f" {k}={v}" for k, v in (side.env or {}).items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT")
        table.add_row(side.name, build, f"{med['throughput']:,.0f}", f"{med['p50']:.2f}", f"{med['p90']:.2f}",
                      f"{med['p99']:.2f}", f"{med['cpu_us']:.1f}", ", ".join(f"{r['cpu_us']:.0f}" for r in runs))
    console = Console()
    console.print(table)
    a, b = medians["A"]["cpu_us"], medians["B"]["cpu_us"]
    console.print(f"B uses {b / a - 1:+.1%} CPU per {'chunk' if streamed else 'request'} against A "
                  f"(medians); p50 {medians['B']['p50'] - medians['A']['p50']:+.2f} ms.")


if __name__ == "__main__":
    main()
