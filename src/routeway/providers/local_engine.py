"""The worker process of one local model: llama.cpp (llama-cpp-python) loaded once, answering the
gateway's requests one at a time over a socket, one JSON line per message, a line per token.

Run as ``python -m routeway.providers.local_engine FD SETTINGS_JSON`` by ``local_worker.py``; never
imported by the gateway, so a crash in native code takes this process down, not routeway.

In:  {"t": "run", "id", "body"} (an OpenAI chat body after routeway's dialect work), {"t": "cancel", "id"}
Out: {"t": "ready", "n_ctx"}; per request {"t": "delta", "id", "text"}…, then one of
     {"t": "end", "id", "finish", "prompt_tokens", "completion_tokens", "evaluated"} or
     {"t": "error", "id", "status", "message"}.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode

# llama-cpp-python's OpenAI server's defaults, so an answer matches what that server would give
DEFAULTS = {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.0}
_SAMPLING = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "seed": "seed",
             "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
             "repetition_penalty": "repeat_penalty"}


class BadRequest(Exception):
    """The request cannot run on this model (the client's fault: a 400)."""


def load(settings: dict[str, Any]) -> Any:
    """The model, with llama.cpp's extra buffer types (AMX repacking) off unless asked for: on AMX Xeons
    llama.cpp 0.3.36's AMX kernels segfault on quantized weights. Llama() builds its model params from
    ``llama_model_default_params()`` with no argument for this, so the default itself is changed here."""
    import llama_cpp
    from llama_cpp import llama_cpp as native

    defaults = native.llama_model_default_params

    def model_params() -> Any:
        params = defaults()
        params.use_extra_bufts = bool(settings.get("extra_bufts", False))
        return params

    native.llama_model_default_params = model_params

    class CountingLlama(llama_cpp.Llama):
        """Counts the tokens it generates (as llama-cpp-python's own usage does: end-of-generation tokens
        excluded) and stops between two tokens once ``stop_now`` says so."""

        generated = 0
        evaluated = 0  # tokens llama.cpp evaluated (prompt and generated), for the gateway's metrics
        stop_now: Callable[[], bool] = staticmethod(lambda: False)
        abort_check: Any = None  # the ctypes callback, kept referenced as long as llama.cpp may call it

        def eval(self, tokens: Any) -> None:
            super().eval(tokens)
            self.evaluated += len(tokens)  # only when evaluated to the end: an aborted eval raises first

        def generate(self, *args: Any, **kwargs: Any) -> Iterator[int]:  # type: ignore[override]
            for token in super().generate(*args, **kwargs):
                if self.stop_now():
                    return
                if not native.llama_vocab_is_eog(self._model.vocab, token):
                    self.generated += 1
                yield token

    llm = CountingLlama(settings["model_path"], n_ctx=settings["n_ctx"], n_batch=settings["batch"],
                        n_threads=settings.get("threads"), verbose=False)
    # llama.cpp asks this between two nodes of its compute graph (~600 times a token for SmolLM2, no
    # measurable cost): a cancel stops even a long prompt's evaluation within milliseconds. An aborted
    # decode raises; the KV cache stays consistent (the next eval drops what lies past n_tokens).
    llm.abort_check = native.ggml_abort_callback(lambda _data: llm.stop_now())
    native.llama_set_abort_callback(llm.ctx, llm.abort_check, None)
    return llm


class Engine:
    def __init__(self, llm: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm = llm
        self.finish = "length"  # of the request being answered
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise SystemExit("the model has no chat template in its GGUF metadata (tokenizer.chat_template)")
        token = llm._model.token_get_text
        eos, bos = llm.token_eos(), llm.token_bos()
        # the model's own template, as llama-cpp-python renders it from the metadata
        self.formatter = Jinja2ChatFormatter(template=template, eos_token=token(eos) if eos != -1 else "",
                                             bos_token=token(bos) if bos != -1 else "", stop_token_ids=[eos])

    def prompt(self, body: dict[str, Any]) -> tuple[list[int], list[str]]:
        messages = [{**m, "content": _text(m.get("content"))} for m in body.get("messages") or []]
        try:
            result = self.formatter(messages=messages,  # type: ignore[arg-type]
                                    tools=body.get("tools"), tool_choice=body.get("tool_choice"),
                                    **(body.get("chat_template_kwargs") or {}))
        except Exception as exc:  # jinja's own errors, and templates that raise_exception() on odd input
            raise BadRequest(f"the model's chat template cannot render these messages: {exc}") from None
        tokens = self.llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        return tokens, stop

    def grammar(self, body: dict[str, Any]) -> Any:
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        try:
            if isinstance(body.get("grammar"), str):  # the operator's extra_body, as llama.cpp's server takes it
                return LlamaGrammar.from_string(body["grammar"], verbose=False)
            fmt = body.get("response_format") or {}
            wrapped = fmt.get("json_schema") or {}  # OpenAI's form; llama.cpp's puts "schema" beside "type"
            schema = wrapped.get("schema") if fmt.get("type") == "json_schema" else fmt.get("schema")
            if schema is not None:
                return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
            if fmt.get("type") in ("json_object", "json_schema"):
                return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        except Exception as exc:
            raise BadRequest(f"response_format cannot be enforced on this model: {exc}") from None
        return None

    def run(self, job: dict[str, Any], send: Callable[[dict[str, Any]], None], cancelled: Callable[[], bool]) -> None:
        body, rid, llm = job["body"], job["id"], self.llm
        try:
            tokens, template_stop = self.prompt(body)
            grammar = self.grammar(body)
        except BadRequest as exc:
            send({"t": "error", "id": rid, "status": 400, "message": str(exc)})
            return
        n_ctx = llm.n_ctx()
        if len(tokens) >= n_ctx:
            send({"t": "error", "id": rid, "status": 400, "message":
                  f"This model's maximum context length is {n_ctx} tokens; the prompt is {len(tokens)} tokens."})
            return
        llm.generated, llm.evaluated, llm.stop_now = 0, 0, cancelled
        try:
            self._generate(rid, body, tokens, template_stop, grammar, n_ctx, send)
        except RuntimeError:  # "llama_decode returned 2": aborted by the cancel, else a real failure
            if not cancelled():
                raise
        send({"t": "end", "id": rid, "finish": "cancelled" if cancelled() else self.finish,
              "prompt_tokens": len(tokens), "completion_tokens": llm.generated, "evaluated": llm.evaluated})

    def _generate(self, rid: int, body: dict[str, Any], tokens: list[int], template_stop: list[str], grammar: Any,
                  n_ctx: int, send: Callable[[dict[str, Any]], None]) -> None:
        llm = self.llm
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        options = {**DEFAULTS,
                   **{name: body[field] for field, name in _SAMPLING.items() if body.get(field) is not None}}
        bias = body.get("logit_bias")
        self.finish = "length"
        for chunk in llm.create_completion(tokens, max_tokens=body.get("max_tokens") or (n_ctx - len(tokens)),
                                           stop=stop + template_stop, grammar=grammar, stream=True,
                                           logit_bias={int(k): float(v) for k, v in bias.items()} if bias else None,
                                           **options):
            if llm.stop_now():
                return
            choice = chunk["choices"][0]
            if choice["text"]:
                send({"t": "delta", "id": rid, "text": choice["text"]})
            self.finish = choice["finish_reason"] or self.finish


def _text(content: Any) -> Any:
    """Chat templates expect strings: OpenAI content parts become their text."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if content is not None else ""


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    settings = json.loads(sys.argv[2])
    out_lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with out_lock:
            sock.sendall(_encode(message) + b"\n")

    engine = Engine(load(settings))
    jobs: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    cancelled: set[int] = set()

    def read() -> None:
        """Requests to the generating thread; cancels take effect between two tokens. The gateway gone
        (end of the socket) ends this process."""
        for line in sock.makefile("rb"):
            message = msgspec.json.decode(line)
            if message["t"] == "cancel":
                cancelled.add(message["id"])
            else:
                jobs.put(message)
        os._exit(0)

    threading.Thread(target=read, daemon=True).start()
    send({"t": "ready", "n_ctx": engine.llm.n_ctx(), "pid": os.getpid()})
    while True:
        job = jobs.get()
        rid = job["id"]
        try:
            if rid in cancelled:  # cancelled while on its way here
                send({"t": "end", "id": rid, "finish": "cancelled", "prompt_tokens": 0, "completion_tokens": 0})
            else:
                engine.run(job, send, functools.partial(set.__contains__, cancelled, rid))
        except Exception as exc:  # llama.cpp refused (a failed decode, a bad grammar it caught): this request only
            send({"t": "error", "id": rid, "status": 502, "message": f"the local engine failed: {exc}"})
        cancelled.discard(rid)


if __name__ == "__main__":
    main()
