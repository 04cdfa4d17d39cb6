"""Instructions and system calls per request of ``routeway serve --workers N``, all its processes summed:
counts that do not move with the machine's load, for comparing 1 worker with 2 (bench/workers.py's req/s
and CPU seconds need a quiet machine).

    PYTHONPATH=src python bench/icount_workers.py --workers 1 2              # callgrind: instructions/request
    PYTHONPATH=src python bench/icount_workers.py --workers 1 2 --strace     # strace -c: syscalls/request

Each run starts ``serve --workers N`` on one mock upstream, warms it up, then counts ``--requests``
requests sent by ``--connections`` clients at once (each its own keep-alive connection, so the kernel
spreads them over the workers and group commits carry more than one request, as under load):

- callgrind: the whole group runs under ``valgrind --tool=callgrind --trace-children=yes`` with
  instrumentation off; it is switched on in the supervisor and every worker for the counted requests only,
  and every process's dump is summed (the per-process split is printed: a worker that got no connection
  shows up there). Under valgrind everything runs ~50× slower, so timers (the change-log poll, lease
  sweeps, keep-alive pings) fire more often per request than in a real run: compare like with like.
- strace: the group runs normally; ``strace -c -f`` attaches to the supervisor and every worker (all
  their threads) for the counted requests, and the calls that tell the suspects apart are printed per
  request (fdatasync, pwrite64, futex, clock_nanosleep, …).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import targets as tg


def start_group(workdir: Path, mock: tg.Target, workers: int, wrapper: list[str],
                env_extra: dict[str, str]) -> tuple[subprocess.Popen, int, str]:
    directory = workdir / "routeway"
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "routeway.toml"
    config.write_text(tg.routeway_config(mock.port, {"bench/mock": "mock"}))
    port = tg.free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "ROUTEWAY_CONFIG"}
    env["ROUTEWAY_ADMIN_KEY"] = tg.ADMIN_KEY
    env.update(env_extra)
    argv = [*wrapper, sys.executable, "-m", "routeway", "serve", "--config", str(config), "--port", str(port),
            "--data-dir", str(directory / "data"), "--log-level", "warning", "--workers", str(workers)]
    with open(directory / "server.log", "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    tg.wait_port(port, process, f"routeway (log: {directory / 'server.log'})", timeout=900)
    _, key = tg.bench_account(port)
    return process, port, key


def group_pids(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [supervisor, *(int(c) for c in children)]


def send_all(port: int, key: str, requests: int, connections: int) -> None:
    """``requests`` small chats from ``connections`` clients at once, each on its own keep-alive connection."""
    body = json.dumps({"model": "bench/mock", "max_tokens": 32,
                       "messages": [{"role": "user", "content": "Say hello in one short sentence."}]})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    counter = iter(range(requests))
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            connection.request("POST", "/api/v1/chat/completions", body, headers)
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                failures.append(f"{response.status}: {payload[:200]!r}")
                break
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"routeway answered {failures[0]}")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(300)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def count_instructions(workers: int, args: argparse.Namespace) -> dict[str, float]:
    """Instructions of every process of the group: while idle for ``--idle`` seconds (its timers: the
    change-log poll, lease upkeep, the parent watch), then over the counted requests. Under valgrind the
    requests take ~50× longer than in a real run, so the timers' share is subtracted at the idle rate."""
    workdir = Path(tempfile.mkdtemp(prefix=f"routeway-icount-w{workers}-"))
    mock = tg.start_mock(workdir, None)
    out = workdir / "callgrind.out"
    wrapper = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
               f"--callgrind-out-file={out}.%p"]
    # valgrind follows the system allocator; pymalloc's arenas confuse it
    process, port, key = start_group(workdir, mock, workers, wrapper, {"PYTHONMALLOC": "malloc"})

    def control(*flags: str) -> None:
        for pid in pids:
            subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)

    try:
        send_all(port, key, args.warmup, args.connections)
        time.sleep(1)
        pids = group_pids(process.pid)
        control("-i", "on")
        time.sleep(args.idle)
        control("-d")  # dump 1: idle
        started = time.monotonic()
        send_all(port, key, args.requests, args.connections)
        elapsed = time.monotonic() - started
        control("-i", "off")
        control("-d")  # dump 2: the counted requests
    finally:
        stop(process)
        mock.stop()
    dumps: dict[int, dict[int, int]] = {1: {}, 2: {}}
    for path in workdir.glob("callgrind.out.*.*"):
        name = re.fullmatch(r"callgrind\.out\.(\d+)\.(\d+)", path.name)
        totals = re.search(r"^totals: (\d+)", path.read_text(errors="replace"), re.MULTILINE)
        if name and totals and int(name.group(2)) in dumps:
            dumps[int(name.group(2))][int(name.group(1))] = int(totals.group(1))
    idle_rate = sum(dumps[1].values()) / args.idle if args.idle else 0.0
    counted = sum(dumps[2].values())
    if args.keep or not counted:
        print(f"callgrind's files: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"raw": counted / args.requests, "idle_per_s": idle_rate, "seconds": elapsed,
            "net": (counted - idle_rate * elapsed) / args.requests,
            "split": sorted(dumps[2].values(), reverse=True)}  # type: ignore[dict-item]


def count_syscalls(workers: int, args: argparse.Namespace) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix=f"routeway-strace-w{workers}-"))
    mock = tg.start_mock(workdir, None)
    process, port, key = start_group(workdir, mock, workers, [], {})
    out = workdir / "strace.txt"
    try:
        send_all(port, key, args.warmup, args.connections)
        time.sleep(1)
        attach = [arg for pid in group_pids(process.pid) for arg in ("-p", str(pid))]
        tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), *attach], stderr=subprocess.DEVNULL)
        time.sleep(1)  # attached to every thread before the counted requests start
        send_all(port, key, args.requests, args.connections)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(60)
        time.sleep(0.5)
        pids = group_pids(process.pid)
        before = context_switches(pids)  # untraced: ptrace's own stops would count
        send_all(port, key, args.requests, args.connections)
        switches = context_switches(pids) - before
    finally:
        stop(process)
        mock.stop()
    calls: dict[str, float] = {}
    for line in out.read_text().splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3]) / args.requests
    calls["(context switches, untraced)"] = switches / args.requests
    shutil.rmtree(workdir, ignore_errors=True)
    return calls


def context_switches(pids: list[int]) -> int:
    """Voluntary and involuntary context switches of every thread of these processes so far."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                status = (task / "status").read_text()
            except FileNotFoundError:
                continue
            total += sum(int(n) for n in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)", status, re.MULTILINE))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--strace", action="store_true", help="count system calls instead of instructions")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds counted idle first (callgrind)")
    parser.add_argument("--keep", action="store_true", help="keep callgrind's files (callgrind_annotate)")
    args = parser.parse_args()
    tool = "strace" if args.strace else "valgrind"
    if shutil.which(tool) is None:
        raise SystemExit(f"{tool} is not installed: apt-get install {tool}")
    for workers in args.workers:
        if args.strace:
            calls = count_syscalls(workers, args)
            switches = calls.pop("(context switches, untraced)")
            listed = sorted(calls.items(), key=lambda kv: -kv[1])
            print(f"--workers {workers}: context switches per request {switches:.2f};"
                  f" system calls per request, all processes: {sum(calls.values()):.1f}  "
                  + "  ".join(f"{k} {v:.2f}" for k, v in listed if v >= 0.01), flush=True)
        else:
            c = count_instructions(workers, args)
            split = ", ".join(f"{n / args.requests:,.0f}" for n in c["split"])  # type: ignore[attr-defined]
            print(f"--workers {workers}: {c['net']:,.0f} instructions per request, all processes, less the idle"
                  f" timers' ({c['raw']:,.0f} counted, idle {c['idle_per_s']:,.0f}/s over {c['seconds']:.0f} s;"
                  f" {args.requests} requests over {args.connections} connections; per process: {split})",
                  flush=True)


if __name__ == "__main__":
    main()
