"""The response cache: a hit against a miss (and the cache off), side by side in one run on one server.

    .venv/bin/python bench/cache.py [--rounds 20 --block 25]

One routeway (this checkout's ``src/``) in front of the bench mock, pinned as the full benchmark pins them.
A closed loop over one keep-alive connection sends blocks of ``--block`` requests of each kind in turn,
``--rounds`` times, so drift in the machine hits every kind alike:

  off    the cache not asked for (the baseline: a plain paid request)
  miss   ``X-OpenRouter-Cache: true`` with a new prompt each time: the whole paid path, plus the key's
         hash, recording the answer and writing it to the cache
  hit    ``X-OpenRouter-Cache: true`` with the same prompt: lookup and replay, a free generation recorded

for whole answers (model ``mock``) and for streams of 50 chunks (``mock-s50-r0-d0``). Latency is what
the client sees; CPU is routeway's own (utime + stime from /proc) over each block, per request. The mock
answers at once, so a miss here costs only routeway's work and the mock's: against a real model a miss
also waits for the model, which a hit never does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402
import targets as tg  # noqa: E402

KINDS = ("off", "miss", "hit")
ON = {"X-OpenRouter-Cache": "true"}


def one(client: httpx.Client, url: str, key: str, model: str, kind: str, stream: bool, priming: bool = False) -> float:
    text = "the same question every time" if kind == "hit" else f"question {uuid.uuid4().hex}"
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 200, "stream": stream}
    headers = {"authorization": f"Bearer {key}", **(ON if kind != "off" else {})}
    began = time.perf_counter()
    with client.stream("POST", url, json=body, headers=headers) as response:
        response.read()
    elapsed = time.perf_counter() - began
    status = response.headers.get("x-openrouter-cache-status")
    expected = "MISS" if priming else {"off": None, "miss": "MISS", "hit": "HIT"}[kind]
    if response.status_code != 200 or status != expected:
        raise SystemExit(f"{kind}: status {response.status_code}, cache {status}: {response.text[:200]}")
    return elapsed


def measure(target: tg.Target, model: str, stream: bool, rounds: int, block: int) -> dict[str, dict[str, float]]:
    url = f"http://127.0.0.1:{target.port}{target.path}"
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu: dict[str, float] = dict.fromkeys(KINDS, 0.0)
    assert target.pid is not None
    with httpx.Client(timeout=30) as client:
        one(client, url, target.key, model, "hit", stream, priming=True)  # the entry the hits replay
        for kind in KINDS:
            one(client, url, target.key, model, kind, stream)
        for _ in range(rounds):
            for kind in KINDS:
                before = procstat.cpu_seconds(target.pid)
                for _ in range(block):
                    latencies[kind].append(one(client, url, target.key, model, kind, stream))
                cpu[kind] += procstat.cpu_seconds(target.pid) - before
    results = {}
    for kind in KINDS:
        ordered = sorted(latencies[kind])
        results[kind] = {"p50_ms": statistics.median(ordered) * 1000,
                         "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
                         "cpu_us": cpu[kind] / len(ordered) * 1e6, "n": len(ordered)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=25)
    args = parser.parse_args()
    pin = tg.pinning()
    with tempfile.TemporaryDirectory(prefix="routeway-bench-cache-") as workdir:
        mock = tg.start_mock(Path(workdir), pin["mock"])
        routeway = tg.start_routeway(Path(workdir), mock, ["mock", "mock-s50-r0-d0"], pin["proxy"],
                                     source=tg.ROOT / "src")
        try:
            print(f"{args.rounds} rounds × {args.block} requests per kind; ms as the client sees it, "
                  "routeway CPU µs per request\n")
            print("| answer | kind | requests | p50 ms | p99 ms | CPU µs/req |")
            print("|---|---|---|---|---|---|")
            for label, model, stream in (("whole", "bench/mock", False),
                                         ("stream, 50 chunks", "bench/mock-s50-r0-d0", True)):
                for kind, r in measure(routeway, model, stream, args.rounds, args.block).items():
                    print(f"| {label} | {kind} | {r['n']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_us']:.0f} |")
        finally:
            routeway.stop()
            mock.stop()


if __name__ == "__main__":
    main()
