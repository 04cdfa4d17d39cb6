"""Tiny random-weight GGUF model + llama-cpp-python server helpers for e2e tests.

The model is a ~470 KB ``llama``-architecture GGUF (F32, n_embd 64, 2 layers,
4 heads, ff 128, context 4096) with a byte-level GPT-2 BPE vocabulary
(256 byte tokens + a few merges + Llama-3 special tokens) and a Llama-3 style
jinja chat template.  The weights are random, so free-running output is noise;
use a GBNF ``grammar`` (or ``response_format``) to get deterministic text.

Usage (from a test or the command line)::

    from tests.support.tiny_gguf import write_tiny_gguf, llama_server, free_port

    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    port = free_port()
    with llama_server(model, port) as proc:      # waits for GET /v1/models
        base_url = f"http://127.0.0.1:{port}/v1"  # model name: "tiny"
        # POST {base_url}/chat/completions with e.g.
        #   {"model": "tiny", "max_tokens": 20,
        #    "messages": [{"role": "user", "content": "hi"}],
        #    "grammar": 'root ::= "<think>hi</think>Hello"'}
        # -> choices[0].message.content == "<think>hi</think>Hello",
        #    finish_reason "stop", usage present.

    python -m tests.support.tiny_gguf [OUT.gguf] [--serve PORT]

Gotchas (verified with llama-cpp-python 0.3.36):

* Always send ``max_tokens``.  The server default (None) means "until the
  context is full".  ``max_completion_tokens`` and ``stream_options`` are
  silently ignored (unknown fields are dropped), so streamed responses never
  carry ``usage``; only non-streaming responses do.
* Free-running output is random tokens: arbitrary bytes incl. control
  characters, partial UTF-8 is dropped (streaming then sends
  ``{"delta": {"content": ""}}`` chunks), it may stop early by sampling
  ``<|eot_id|>`` (finish_reason "stop") or hit the limit ("length"; usage
  may then report max_tokens+1 or +2).  Only assert on structure.
* Grammar-constrained output stops by itself: once the grammar is complete
  only end-of-generation tokens are allowed, ``<|eot_id|>`` (EOS) is sampled,
  finish_reason is "stop"; the EOS is neither in ``content`` nor counted in
  usage.completion_tokens.  If ``max_tokens`` is too small the string is cut
  off with finish_reason "length".  Tokens are single bytes plus the merges
  "in", "he", " t", " a", " the", "\n\n"; under a grammar the model may pick
  either segmentation, so for exact usage counts use strings without those
  pairs (e.g. "abcdefghijklmnopqrst" -> completion_tokens == 20).
* ``grammar`` (GBNF text) is a llama-cpp-python extension field.  An INVALID
  grammar crashes the whole server process (SIGSEGV) -- never send one.
* ``response_format={"type": "json_object", "schema": {...}}`` becomes a
  grammar (without ``schema``: any JSON, may be cut off by max_tokens).
  Its ``string`` rule allows raw control characters, which strict
  ``json.loads`` rejects; give string fields a ``pattern``/``enum`` (or use
  ``json.loads(..., strict=False)``).  OpenAI's
  ``{"type": "json_schema", ...}`` is rejected with HTTP 500.
* Any ``model`` name is accepted on /v1/chat/completions and echoed back;
  /v1/completions reports the model *path* as ``model``.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence

# --------------------------------------------------------------------------- #
# Model
# --------------------------------------------------------------------------- #

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 128
N_CTX_TRAIN = 4096

SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)
BOS = "<|begin_of_text|>"
EOS = "<|eot_id|>"

# A simple Llama-3 style template.  Deliberately *not* byte-identical to
# llama-cpp-python's LLAMA3_INSTRUCT_CHAT_TEMPLATE, so the server renders this
# jinja template itself (Jinja2ChatFormatter, stop token = EOS) instead of
# switching to its hard-coded "llama-3" formatter.  Handles string content and
# OpenAI-style lists of {"type": "text", "text": ...} parts.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}"
    "{{ message['content'] | trim }}"
    "{% elif message['content'] %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{{ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

# A few merges (the llama.cpp loader refuses a gpt2 vocab without merges).
# Every merge result is also added to the vocabulary.
MERGES = ("Ġ t", "h e", "Ġ a", "i n", "Ġt he", "Ċ Ċ")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode char mapping."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def _vocab() -> tuple[list[str], list[int]]:
    import gguf

    b2u = _bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    types = [gguf.TokenType.NORMAL] * 256
    for merge in MERGES:
        merged = merge.replace(" ", "")
        assert merged not in tokens, merged
        tokens.append(merged)
        types.append(gguf.TokenType.NORMAL)
    for tok in SPECIAL_TOKENS:
        tokens.append(tok)
        types.append(gguf.TokenType.CONTROL)
    return tokens, [int(t) for t in types]


def write_tiny_gguf(path: pathlib.Path, seed: int = 0, mean_pooling: bool = False) -> pathlib.Path:
    """Write a tiny random-weight llama GGUF to ``path`` and return the path.

    Same seed -> byte-identical file. ``mean_pooling``: declare mean pooling, so an engine serving it with
    embeddings on answers one vector per input (as an embedding model does) rather than one per token.
    """
    import gguf
    import numpy as np

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens, types = _vocab()
    n_vocab = len(tokens)
    head_dim = N_EMBD // N_HEAD

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-random-llama")
    if mean_pooling:
        w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(list(MERGES))
    w.add_bos_token_id(tokens.index(BOS))
    w.add_eos_token_id(tokens.index(EOS))
    w.add_eot_token_id(tokens.index(EOS))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def rand(*shape: int) -> np.ndarray:
        # numpy shape is (rows=out_features, cols=in_features); gguf reverses it.
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    ones = np.ones(N_EMBD, dtype=np.float32)
    w.add_tensor("token_embd.weight", rand(n_vocab, N_EMBD))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones.copy())
        w.add_tensor(p + "attn_q.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(p + "attn_k.weight", rand(N_HEAD_KV * head_dim, N_EMBD))
        w.add_tensor(p + "attn_v.weight", rand(N_HEAD_KV * head_dim, N_EMBD))
        w.add_tensor(p + "attn_output.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(p + "ffn_norm.weight", ones.copy())
        w.add_tensor(p + "ffn_gate.weight", rand(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_up.weight", rand(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_down.weight", rand(N_EMBD, N_FF))
    w.add_tensor("output_norm.weight", ones.copy())
    w.add_tensor("output.weight", rand(n_vocab, N_EMBD))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --------------------------------------------------------------------------- #
# Server
# --------------------------------------------------------------------------- #


def free_port() -> int:
    """An unused localhost TCP port (small race window, fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_server(
    model_path: os.PathLike[str] | str,
    port: int,
    *,
    n_ctx: int = 4096,
    alias: str = "tiny",
    timeout: float = 60.0,
    python: str | None = None,
    extra_args: Sequence[str] = (),
    log_path: os.PathLike[str] | str | None = None,
) -> subprocess.Popen:
    """Start ``python -m llama_cpp.server`` and wait until GET /v1/models is 200.

    Server output goes to ``log_path`` (default: a temp file that
    stop_llama_server deletes), available as ``proc.log_path``.  Raises RuntimeError (with the log tail) if the server
    exits early or is not ready within ``timeout`` seconds.  Stop it with
    :func:`stop_llama_server`.
    """
    auto_log = log_path is None
    if auto_log:
        fd, log_path = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        os.close(fd)
    log_path = str(log_path)
    cmd = [
        python or sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        *extra_args,
    ]
    log = open(log_path, "wb")  # noqa: SIM115 - open as long as the server runs
    try:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    finally:
        log.close()
    proc.log_path = log_path  # type: ignore[attr-defined]
    proc.auto_log = auto_log  # type: ignore[attr-defined]

    url = f"http://127.0.0.1:{port}/v1/models"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            msg = f"llama server exited with {proc.returncode}:\n{_tail(log_path)}"
            stop_llama_server(proc)
            raise RuntimeError(msg)
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            msg = f"llama server not ready after {timeout}s:\n{_tail(log_path)}"
            stop_llama_server(proc)
            raise RuntimeError(msg)
        time.sleep(0.2)


def stop_llama_server(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate (then kill if needed) a server from :func:`start_llama_server`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if getattr(proc, "auto_log", False):
        with contextlib.suppress(OSError):
            os.unlink(proc.log_path)  # type: ignore[attr-defined]


@contextlib.contextmanager
def llama_server(
    model_path: os.PathLike[str] | str, port: int, **kwargs
) -> Iterator[subprocess.Popen]:
    """Context manager around start_llama_server / stop_llama_server."""
    proc = start_llama_server(model_path, port, **kwargs)
    try:
        yield proc
    finally:
        stop_llama_server(proc)


def _tail(path: str, n: int = 4000) -> str:
    try:
        return pathlib.Path(path).read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return "<no log>"


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="tiny.gguf")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--serve", type=int, metavar="PORT", help="also serve it")
    args = ap.parse_args()
    out = write_tiny_gguf(pathlib.Path(args.out), seed=args.seed)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    if args.serve:
        import signal

        signal.signal(signal.SIGTERM, signal.default_int_handler)
        t0 = time.monotonic()
        p = start_llama_server(out, args.serve)
        print(f"serving on http://127.0.0.1:{args.serve}/v1 (model 'tiny'), "
              f"ready in {time.monotonic() - t0:.1f}s, log {p.log_path}; Ctrl-C stops")
        try:
            p.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop_llama_server(p)
