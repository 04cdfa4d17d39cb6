"""A local model through routeway against llama-cpp-python's own OpenAI server: the same GGUF, threads,
context, prompt and sampling, in one run, requests alternating between the two so that drift and other
load fall on both alike. Reports time to first token and tokens per second (median of the runs) and
their ratios; appends nothing by itself (copy the table into bench/NOTES.md).

    .venv/bin/python bench/local.py [--runs 10] [--tokens 128] [--threads N] [--model PATH.gguf]

Each answer is exactly ``--tokens`` long (the end token is banned with a logit bias), at temperature 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from routeway.local_models import smollm2_path  # noqa: E402

from tests.conftest import start_gateway, stop_gateway  # noqa: E402
from tests.support.tiny_gguf import free_port  # noqa: E402

# llama-cpp-python's server builds its model with the default model params: the same AMX workaround
# as routeway's worker (README, "The AMX trap"), or it segfaults on this CPU
SERVER = """
import runpy, sys
from llama_cpp import llama_cpp as native
defaults = native.llama_model_default_params
def params():
    p = defaults(); p.use_extra_bufts = False; return p
native.llama_model_default_params = params
sys.argv = ["llama_cpp.server"] + sys.argv[1:]
runpy.run_module("llama_cpp.server", run_name="__main__")
"""
PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


def one(url: str, headers: dict[str, str], model: str, tokens: int, eos: int) -> tuple[float, float, int]:
    """(time to first token s, tokens per second after it, tokens) of one streamed answer."""
    body = {"model": model, "messages": PROMPT, "max_tokens": tokens, "temperature": 0, "seed": 1, "stream": True,
            "logit_bias": {str(eos): -100}}
    began = time.perf_counter()
    first = last = 0.0
    chunks = 0
    with httpx.stream("POST", url, json=body, headers=headers, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                last = time.perf_counter()
                first = first or last
                chunks += 1
    return first - began, (chunks - 1) / (last - first) if last > first else 0.0, chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))  # routeway's default
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--model", type=Path, default=smollm2_path())
    args = parser.parse_args()
    import llama_cpp

    eos = llama_cpp.Llama(str(args.model), vocab_only=True, verbose=False).token_eos()
    root = Path(tempfile.mkdtemp(prefix="bench-local-"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, "--model", str(args.model), "--model_alias", "m", "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(args.n_ctx), "--n_threads", str(args.threads), "--n_batch", "512"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (root / "routeway.toml").write_text(
        f'[[providers]]\nname = "bench"\nkind = "local"\nmodel_path = "{args.model}"\nn_ctx = {args.n_ctx}\n'
        f"threads = {args.threads}\nbatch = 512\n")
    gateway = start_gateway(root / "routeway.toml", root / "data")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("llama-cpp-python's server did not start")
            time.sleep(0.2)
        key = gateway.account(credits=1).api_key
        targets = {"llama-cpp-python server": (f"http://127.0.0.1:{port}/v1/chat/completions", {}, "m"),
                   "routeway (local kind)": (gateway.api + "/chat/completions", {"authorization": f"Bearer {key}"},
                                             "local/bench")}
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in targets}
        for url, headers, model in targets.values():
            one(url, headers, model, 8, eos)  # warm up: the prompt's KV cache, the first connection
        for _ in range(args.runs):
            for name, (url, headers, model) in targets.items():
                results[name].append(one(url, headers, model, args.tokens, eos))
        print(f"model {args.model.name}, threads {args.threads}, n_ctx {args.n_ctx}, {args.tokens} tokens,"
              f" {args.runs} alternating runs, load average {os.getloadavg()[0]:.2f}")
        print("| | TTFT p50 (ms) | tokens/s p50 | tokens |")
        print("|---|---|---|---|")
        medians = {}
        for name, rows in results.items():
            ttft = statistics.median(r[0] for r in rows) * 1000
            tps = statistics.median(r[1] for r in rows)
            medians[name] = (ttft, tps)
            print(f"| {name} | {ttft:.2f} | {tps:.1f} | {rows[0][2]} |")
        (base_ttft, base_tps), (ours_ttft, ours_tps) = medians.values()
        print(f"\nrouteway / server tokens/s: {ours_tps / base_tps:.3f}   added TTFT: {ours_ttft - base_ttft:+.2f} ms")
    finally:
        stop_gateway(gateway)
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
