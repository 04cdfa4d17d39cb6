"""Run the whole benchmark once: mock (floor), nginx (proxy floor) and routeway side by side.

    .venv/bin/python bench/run.py            # full run, about 5 minutes
    .venv/bin/python bench/run.py --quick    # smoke run, under 2 minutes
    .venv/bin/python bench/run.py --profile  # also sample routeway with py-spy under load

Results go to bench/results/<timestamp>/ (results.json, results.md, *.png). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inside  # noqa: E402
import machine  # noqa: E402
import pyspy  # noqa: E402
import report  # noqa: E402
import targets as tg  # noqa: E402
from procstat import Watch, cpu_seconds, system_busy_seconds  # noqa: E402

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # rate | saturation | stream | concurrent
    model: str  # the name the mock is asked for (routeway maps bench/<name> to it)
    duration: float
    rate: float = 0.0
    connections: int = 32  # opened before the clock starts
    max_connections: int = 1024
    saturate: bool = False
    stream: bool = False
    expect_chunks: int = 0
    drain: float = 10.0
    stall_ms: float = 1000.0


def scenarios(quick: bool) -> list[Scenario]:
    d = 3.0 if quick else 10.0
    long_chunks = 15 if quick else 50  # 1,000 streams at 5 chunks/s: 3 s or 10 s each
    return [
        Scenario("rate-500", "rate", "mock", d, rate=500),
        Scenario("rate-1000", "rate", "mock", d, rate=1000),
        Scenario("rate-2000", "rate", "mock", d, rate=2000, connections=64),
        Scenario("saturation", "saturation", "mock", d, connections=64, saturate=True),
        Scenario("stream-200", "stream", "mock-s200-r200-d20", d, rate=20, stream=True, expect_chunks=200,
                 drain=15),
        Scenario("concurrent-1000", "concurrent", f"mock-s{long_chunks}-r5-d0", 1.0, rate=1000, connections=1000,
                 max_connections=1100, stream=True, expect_chunks=long_chunks, drain=long_chunks / 5 + 15),
    ]


def loadgen_argv(target: tg.Target, sc: Scenario, cpu: str | None) -> list[str]:
    argv = [sys.executable, str(BENCH / "loadgen.py"), "--port", str(target.port), "--path", target.path,
            "--key", target.key, "--model", target.models.get(sc.model, sc.model),
            "--duration", str(sc.duration), "--connections", str(sc.connections),
            "--max-connections", str(sc.max_connections), "--drain", str(sc.drain), "--stall-ms", str(sc.stall_ms)]
    if sc.saturate:
        argv.append("--saturate")
    else:
        argv += ["--rate", str(sc.rate)]
    if sc.stream:
        argv += ["--stream", "--expect-chunks", str(sc.expect_chunks)]
    return tg.pinned(cpu, argv)


def routeway_python_version(python: str | None) -> str:
    exe = python or sys.executable
    done = subprocess.run([exe, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def cooldown(pids: list[int], quiet_wait: float) -> float:
    """Wait until the servers are idle (a backlog from the last run must not leak into the next), then up
    to ``quiet_wait`` seconds more for the rest of the machine to use under 15% of a core. Returns the
    other processes' CPU use (cores) in the last half second."""
    deadline = time.monotonic() + 30.0  # an overloaded gateway may still be working off its backlog
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(0.25)
        if sum(cpu_seconds(p) for p in pids) - before < 0.01:
            break
    deadline = time.monotonic() + quiet_wait
    while True:
        busy0, ours0 = system_busy_seconds(), sum(cpu_seconds(p) for p in pids)
        time.sleep(0.5)
        other = (system_busy_seconds() - busy0 - (sum(cpu_seconds(p) for p in pids) - ours0)) / 0.5
        if other < 0.15 or time.monotonic() >= deadline:
            return round(other, 2)


def measure(target: tg.Target, mock: tg.Target, sc: Scenario, cpu: str | None, quiet_wait: float = 0.0) -> dict:
    pids = {"mock": mock.pid} if target is mock else {"proxy": target.pid, "mock": mock.pid}
    other_before = cooldown(list(pids.values()), quiet_wait)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, self0 = system_busy_seconds(), os.times()
    own_view = target.name == "routeway"  # routeway's /metrics: its commits and event-loop lag
    metrics_before = inside.scrape(target.port) if own_view else None
    watch = Watch(pids).start()
    done = subprocess.run(loadgen_argv(target, sc, cpu), capture_output=True, text=True,
                          timeout=sc.duration + sc.drain + 120)
    watch.stop()
    busy = system_busy_seconds() - busy0
    children1, self1 = resource.getrusage(resource.RUSAGE_CHILDREN), os.times()
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed on {target.name}/{sc.name}: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    loadgen_cpu = (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime)
    runner_cpu = (self1.user - self0.user) + (self1.system - self0.system)
    ours = sum(watch.cpu.values()) + loadgen_cpu + runner_cpu
    if metrics_before is not None:
        result["inside"] = inside.view(metrics_before, inside.scrape(target.port))
    result.update(target=target.name, scenario=sc.name, kind=sc.kind, cpu_s=watch.cpu,
                  main_thread_cpu_s=watch.main_thread_cpu,
                  peak_rss_kb=watch.peak_rss_kb, loadgen_process_cpu_s=round(loadgen_cpu, 3),
                  other_cpu_s=round(max(0.0, busy - ours), 3), other_cpu_before=other_before)
    return result


def brief(r: dict) -> str:
    s = r["summary"]["ttft" if r["stream"] else "total"]
    ms = (lambda v: f"{v / 1000:.2f}" if v is not None else "-")
    errors = sum(r["errors"].values())
    return (f"{r['scenario']:>16} {r['target']:>9}: {r['throughput']:>8.1f}/s  "
            f"{'ttft' if r['stream'] else 'lat'} p50 {ms(s['p50'])} p99 {ms(s['p99'])} ms  "
            f"errors {errors}  cpu {r['cpu_s']}  other-cpu {r['other_cpu_s']}s")


def profile(routeway: tg.Target, pin: dict, out: Path, seconds: float) -> dict:
    """Sample routeway while it serves non-streaming chat at 1,000 req/s."""
    sc = Scenario("profile", "rate", "mock", seconds + 4, rate=1000)
    loadgen = subprocess.Popen(loadgen_argv(routeway, sc, pin["client"]), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    try:
        spots = pyspy.record(routeway.pid, seconds, out, pin["client"])
    finally:
        stdout, _ = loadgen.communicate(timeout=sc.duration + sc.drain + 60)
    load = json.loads(stdout) if loadgen.returncode == 0 else {}
    spots["load"] = {"rate": 1000, "throughput": load.get("throughput"), "errors": load.get("errors")}
    return spots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3-second runs (smoke test, under 2 minutes)")
    parser.add_argument("--profile", action="store_true", help="sample routeway with py-spy at 1,000 req/s")
    parser.add_argument("--only", default="", help="comma-separated scenario names to run (default: all)")
    parser.add_argument("--wait-quiet", type=float, default=None,
                        help="seconds to wait before each run for other processes to go quiet (20; 1 with --quick)")
    parser.add_argument("--durability", choices=("full", "normal"), default="full",
                        help="routeway's [server] durability: fsync each group commit (full, the default) or not")
    parser.add_argument("--routeway-python", default=None,
                        help="run routeway under this interpreter (a venv's python with routeway installed)")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the temp folder (configs, logs, routeway's SQLite file) for inspection")
    parser.add_argument("--out", default=str(BENCH / "results"), help="parent folder of the results folder")
    args = parser.parse_args()
    if args.wait_quiet is None:
        args.wait_quiet = 1.0 if args.quick else 20.0

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    out = Path(args.out) / stamp
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="routeway-bench-"))
    pin = tg.pinning()
    described = machine.describe()  # before pinning ourselves: nproc must see every CPU
    if pin["client"] is not None:
        os.sched_setaffinity(0, {int(pin["client"])})  # the runner's own sampling stays off the proxy core
    chosen = [s for s in scenarios(args.quick) if not args.only or s.name in args.only.split(",")]
    started = time.monotonic()
    mock = tg.start_mock(workdir, pin["mock"])
    servers: list[tg.Target] = [mock]
    results: dict = {"started": stamp, "command": " ".join([Path(sys.executable).name] + sys.argv),
                     "quick": args.quick, "durability": args.durability, "routeway_python": routeway_python_version(args.routeway_python), "pinning": pin, "scenarios": [asdict(s) for s in chosen], "runs": []}
    try:
        nginx = tg.start_nginx(workdir, mock, pin["proxy"])
        if nginx:
            servers.append(nginx)
        routeway = tg.start_routeway(workdir, mock, sorted({s.model for s in chosen} | {"mock"}), pin["proxy"],
                                     args.durability, args.routeway_python)
        servers.append(routeway)
        results["machine"] = {**described, "nginx": nginx.extra.get("version") if nginx else None}
        warm = Scenario("warmup", "rate", "mock", 2.0 if not args.quick else 1.0, rate=500)
        steps = len(servers) * (1 + len(chosen)) + (1 if args.profile else 0)
        with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn()) as progress:
            bar = progress.add_task("warm-up", total=steps)
            for target in servers:
                progress.update(bar, description=f"warm-up / {target.name}")
                measure(target, mock, warm, pin["client"])
                progress.advance(bar)
            for sc in chosen:
                for target in servers:
                    progress.update(bar, description=f"{sc.name} / {target.name}")
                    run = measure(target, mock, sc, pin["client"], args.wait_quiet)
                    results["runs"].append(run)
                    progress.console.print(brief(run), highlight=False, soft_wrap=True)
                    progress.advance(bar)
            if args.profile:
                progress.update(bar, description="py-spy profile / routeway")
                results["profile"] = profile(routeway, pin, out, 10.0)
                progress.advance(bar)
        results["finished_load"] = machine.loadavg()
    finally:
        for server in reversed(servers):
            server.stop()
        mock_log = (workdir / "mock.log").read_text().strip().splitlines()
        results["mock_totals"] = json.loads(mock_log[-1]) if mock_log and mock_log[-1].startswith("{") else None
        if args.keep_workdir:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["wall_s"] = round(time.monotonic() - started, 1)
    report.write(results, out)
    print(f"\nresults: {out}/results.md ({results['wall_s']} s)")


if __name__ == "__main__":
    main()
