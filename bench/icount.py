"""Instructions per request, counted by valgrind's callgrind: a measure that does not move with the load of
the machine, for comparing two builds on a machine other work is using (bench/ab.py's CPU time needs a
quiet one).

    .venv/bin/python bench/icount.py --a fd0cd61 --b WORKTREE            # whole answers
    .venv/bin/python bench/icount.py --a HEAD --b WORKTREE --stream      # 200-chunk streams (per chunk)

Each side runs routeway under ``valgrind --tool=callgrind`` with instrumentation off, against one mock
upstream; after a warm-up, instrumentation is switched on (``callgrind_control -i on``) for ``--requests``
requests sent one at a time over one keep-alive connection (as at ``rate-1000``, where requests rarely
overlap), then the count is dumped and divided by the requests. Under valgrind routeway runs ~50× slower,
so timers (keep-alive pings, sweeps, group-commit waits) fire more often per request than in a real run:
compare builds with the same settings, not a count with real CPU time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab
import targets as tg

ROOT = Path(__file__).resolve().parent.parent
STREAM_MODEL = "mock-s200-r100000-d0"  # 200 chunks as fast as the mock sends them


def start_under_callgrind(workdir: Path, mock: tg.Target, source: Path | None,
                          out: Path) -> tuple[subprocess.Popen, int, str]:
    directory = workdir / "routeway"
    directory.mkdir(parents=True, exist_ok=True)
    models = {"bench/mock": "mock", f"bench/{STREAM_MODEL}": STREAM_MODEL}
    config = directory / "routeway.toml"
    config.write_text(tg.routeway_config(mock.port, models))
    port = tg.free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "ROUTEWAY_CONFIG"}
    env["ROUTEWAY_ADMIN_KEY"] = tg.ADMIN_KEY
    env["PYTHONMALLOC"] = "malloc"  # valgrind follows the system allocator; pymalloc's arenas confuse it
    if source is not None:
        env["PYTHONPATH"] = str(source)
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            str(ROOT / ".venv" / "bin" / "python"), "-m", "routeway", "serve", "--config", str(config),
            "--port", str(port), "--data-dir", str(directory / "data"), "--log-level", "warning"]
    with open(directory / "server.log", "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    tg.wait_port(port, process, f"routeway under callgrind (log: {directory / 'server.log'})", timeout=600)
    _, key = tg.bench_account(port)
    return process, port, key


def send(connection: http.client.HTTPConnection, key: str, stream: bool) -> None:
    model = f"bench/{STREAM_MODEL}" if stream else "bench/mock"
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            "max_tokens": 32, "stream": stream}
    connection.request("POST", "/api/v1/chat/completions", json.dumps(body),
                       {"authorization": f"Bearer {key}", "content-type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"routeway answered {response.status}: {payload[:300]!r}")


def instructions(out: Path) -> int:
    """The instructions in every dump (the dump taken after the counted requests, and the one at exit, which
    holds what ran with instrumentation on after it: nothing)."""
    total = 0
    for path in out.parent.glob(out.name + "*"):
        match = re.search(r"^totals: (\d+)", path.read_text(errors="replace"), re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


def measure(side: ab.Side, stream: bool, warmup: int, requests: int, progress: Progress) -> float:
    workdir = Path(tempfile.mkdtemp(prefix=f"routeway-icount-{side.name}-"))
    mock = tg.start_mock(workdir, None)
    out = workdir / "callgrind.out"
    process, port, key = start_under_callgrind(workdir, mock, side.source, out)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        task = progress.add_task(f"{side.name} ({side.revision}) warm-up", total=warmup + requests)
        for _ in range(warmup):
            send(connection, key, stream)
            progress.advance(task)
        time.sleep(1)
        subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True)
        progress.update(task, description=f"{side.name} ({side.revision}) counted")
        for _ in range(requests):
            send(connection, key, stream)
            progress.advance(task)
        subprocess.run(["callgrind_control", "-i", "off", str(process.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True)
        connection.close()
    finally:
        process.terminate()
        process.wait(120)
        mock.stop()
    counted = instructions(out)
    if counted:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"no instructions counted: see {workdir}")
    return counted / (requests * (200 if stream else 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", default="HEAD", help="A: a git revision, or WORKTREE (default HEAD)")
    parser.add_argument("--b", default=ab.WORKTREE, help="B: a git revision, or WORKTREE (default)")
    parser.add_argument("--stream", action="store_true", help="streams of 200 chunks; counts per chunk")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    sides = [ab.Side("A", args.a, None), ab.Side("B", args.b, None)]
    for side in sides:
        if side.revision != ab.WORKTREE:
            side.source = ab.checkout(side.revision, ROOT) / "src"
    counts: dict[str, float] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()) as progress:
        for side in sides:
            counts[side.name] = measure(side, args.stream, args.warmup, args.requests, progress)
    for side in sides:
        if side.source is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(side.source.parent)],
                           capture_output=True)
    unit = "chunk" if args.stream else "request"
    sent = "streams" if args.stream else "requests"
    table = Table(title=f"instructions per {unit} (callgrind, {args.requests} {sent})")
    table.add_column("side")
    table.add_column("revision")
    table.add_column(f"instructions / {unit}", justify="right")
    for side in sides:
        table.add_row(side.name, side.revision, f"{counts[side.name]:,.0f}")
    table.add_row("B / A", "", f"{counts['B'] / counts['A']:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
