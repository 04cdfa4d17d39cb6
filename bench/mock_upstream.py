"""A mock OpenAI chat-completions upstream that costs far less than the gateway in front of it.

A raw asyncio Protocol on uvloop with httptools' C parser: no framework, no per-request objects beyond
one small decode. Every answer is built from bytes prepared once per model name.

What each request gets is chosen by its ``model`` field (so one mock serves every scenario):

  mock                      non-streaming JSON answer with usage (``stream: true`` streams with the defaults)
  mock-s200-r1000-d0        SSE stream: 200 content chunks, 1000 chunks/s, first chunk after 0 ms

Any of ``s`` (chunks per answer), ``r`` (chunks per second; 0 = as fast as possible) and ``d`` (first-token
delay in ms) may be left out; the command-line defaults fill in. A stream ends with a finish chunk, a usage
chunk with empty ``choices`` and ``data: [DONE]``, in HTTP/1.1 chunked encoding on a keep-alive connection.

    python bench/mock_upstream.py --port 9100 [--chunks 200 --rate 1000 --delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
from dataclasses import dataclass

import httptools
import msgspec
import uvloop


class MockRequest(msgspec.Struct):
    model: str = "mock"
    stream: bool = False


_decode = msgspec.json.Decoder(MockRequest).decode
_PARAM = re.compile(r"([srd])(\d+)")
HELLO = "Hello! I am a mock model, answering in one short sentence."


@dataclass(frozen=True)
class Plan:
    """Everything one model name's answers need, as ready-to-write bytes."""
    json_answer: bytes
    stream_head: bytes
    first_chunk: bytes
    chunk: bytes
    tail: bytes
    chunks: int
    interval: float  # seconds between chunks (0 = all at once)
    delay: float     # seconds before the first chunk


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def build_plan(model: str, chunks: int, rate: float, delay_ms: float) -> Plan:
    for key, value in _PARAM.findall(model):
        if key == "s":
            chunks = int(value)
        elif key == "r":
            rate = float(value)
        else:
            delay_ms = float(value)
    base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
    answer = json.dumps({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": HELLO}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 13, "total_tokens": 25},
    }, separators=(",", ":")).encode()
    json_answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                   % (len(answer), answer))

    def delta(d: dict, finish: str | None = None) -> bytes:
        return _event({**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]})

    tail = (_chunked(delta({}, "stop")) + _chunked(_event({**base, "choices": [], "usage": usage}))
            + _chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    return Plan(
        json_answer=json_answer,
        stream_head=b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                    b"transfer-encoding: chunked\r\n\r\n",
        first_chunk=_chunked(delta({"role": "assistant", "content": "tok"})),
        chunk=_chunked(delta({"content": " tok"})),
        tail=tail, chunks=chunks, interval=1.0 / rate if rate > 0 else 0.0, delay=delay_ms / 1000.0)


class Stats:
    requests = 0
    streams = 0
    chunks = 0


class MockProtocol(asyncio.Protocol):
    __slots__ = ("defaults", "plans", "transport", "parser", "body", "timer", "loop")

    def __init__(self, defaults: tuple[int, float, float], plans: dict[str, Plan]) -> None:
        self.defaults = defaults
        self.plans = plans
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.body.clear()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        Stats.requests += 1
        try:
            request = _decode(b"".join(self.body))
        except msgspec.DecodeError:
            request = MockRequest()
        plan = self.plans.get(request.model)
        if plan is None:
            plan = self.plans[request.model] = build_plan(request.model, *self.defaults)
        if not request.stream:
            self.transport.write(plan.json_answer)
            return
        Stats.streams += 1
        self.transport.write(plan.stream_head)
        start = self.loop.time() + plan.delay
        if plan.delay:
            self.timer = self.loop.call_at(start, self._tick, plan, 0, start)
        else:
            self._tick(plan, 0, start)

    def _tick(self, plan: Plan, sent: int, start: float) -> None:
        """Send every chunk that is due (all of them when unpaced), then sleep until the next one."""
        self.timer = None
        transport = self.transport
        if transport is None:
            return
        now = self.loop.time()
        out = []
        while sent < plan.chunks and (plan.interval == 0 or start + sent * plan.interval <= now + 0.0005):
            out.append(plan.first_chunk if sent == 0 else plan.chunk)
            sent += 1
        Stats.chunks += len(out)
        if sent >= plan.chunks:
            out.append(plan.tail)
            transport.write(b"".join(out))
            return
        if out:
            transport.write(b"".join(out))
        self.timer = self.loop.call_at(start + sent * plan.interval, self._tick, plan, sent, start)


async def serve(host: str, port: int, defaults: tuple[int, float, float], ready: str | None) -> None:
    loop = asyncio.get_running_loop()
    plans: dict[str, Plan] = {}
    server = await loop.create_server(lambda: MockProtocol(defaults, plans), host, port, backlog=4096,
                                      reuse_address=True)
    if ready:
        print(ready, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    print(json.dumps({"requests": Stats.requests, "streams": Stats.streams, "chunks": Stats.chunks}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--chunks", type=int, default=200, help="content chunks per streamed answer")
    parser.add_argument("--rate", type=float, default=1000.0, help="chunks per second (0 = unpaced)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="first-token delay")
    parser.add_argument("--ready", default="READY", help="line printed once listening")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, (args.chunks, args.rate, args.delay_ms), args.ready))


if __name__ == "__main__":
    main()
