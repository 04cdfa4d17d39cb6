"""Open-loop HTTP/1.1 load generator (and a closed-loop saturation mode) for chat completions.

Open loop: request i is due at t0 + i/rate, whether or not earlier ones have finished, and every latency
is measured from that intended time, so a server that falls behind shows its queueing (coordinated
omission corrected, as in wrk2). Requests go out on keep-alive connections from a pool that is opened
before the clock starts and grows on demand up to --max-connections; past that, requests wait in the
client, still timed from their intended send time.

Closed loop (--connections N --saturate): N connections each send the next request as soon as the last
answer is complete; the result is the maximum throughput.

Recorded in HDR histograms (microseconds): total (intended send → last byte), service (actual send → last
byte), ttfb (intended → first byte), ttft (intended → first SSE data event with content), gap (between
successive content events of a stream) and lag (intended → actual send: the generator's own lateness).

One JSON object goes to stdout. Typical use is through bench/run.py; by hand:

    python bench/loadgen.py --port 9100 --rate 1000 --duration 10 --model mock
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path

import httptools
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hist  # noqa: E402

now = time.perf_counter
CONTENT, EMPTY = b'"content":"', b'"content":""'


class Req:
    __slots__ = ("intended", "sent", "first_byte", "first_token", "last_token", "done", "status", "chunks",
                 "tail", "saw_done", "max_gap")

    def __init__(self, intended: float) -> None:
        self.intended = intended
        self.sent = self.first_byte = self.first_token = self.last_token = self.done = 0.0
        self.status = 0
        self.chunks = 0
        self.tail = b""
        self.saw_done = False
        self.max_gap = 0.0


class Conn(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""
    __slots__ = ("gen", "transport", "parser", "req")

    def __init__(self, gen: LoadGen) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.req: Req | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, req: Req) -> None:
        self.req = req
        req.sent = now()
        self.transport.write(self.gen.payload)

    def data_received(self, data: bytes) -> None:
        req = self.req
        if req is not None and not req.first_byte:
            req.first_byte = now()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.gen.errors["bad-response"] += 1
            self.transport.close()

    def on_headers_complete(self) -> None:
        self.req.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if not self.gen.stream:
            return
        req = self.req
        buf = req.tail + body if req.tail else body
        end = buf.rfind(b"\n\n")
        if end < 0:
            req.tail = buf
            return
        req.tail = buf[end + 2:]
        events = buf[:end]
        n = events.count(CONTENT) - events.count(EMPTY)
        if n > 0:
            t = now()
            gap = self.gen.hists["gap"]
            if req.first_token:
                g = t - req.last_token
                gap.record_value(int(g * 1e6))
                if g > req.max_gap:
                    req.max_gap = g
            else:
                req.first_token = t
            for _ in range(n - 1):  # events that arrived in the same read: no gap between them
                gap.record_value(0)
            req.last_token = t
            req.chunks += n
        if b"data: [DONE]" in events:
            req.saw_done = True

    def on_message_complete(self) -> None:
        req, self.req = self.req, None
        req.done = now()
        self.gen.finished(self, req, self.parser.should_keep_alive())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.gen.lost(self, self.req)
        self.req = None


class LoadGen:
    def __init__(self, args: argparse.Namespace) -> None:
        self.host, self.port = args.host, args.port
        self.stream = args.stream
        self.expect_chunks = args.expect_chunks
        self.stall_s = args.stall_ms / 1000.0
        self.max_conns = args.max_connections
        self.payload = build_payload(args)
        self.hists = {name: hist.new() for name in ("total", "service", "ttfb", "ttft", "gap", "lag")}
        self.errors: Counter[str] = Counter()
        self.idle: list[Conn] = []
        self.queue: deque[Req] = deque()
        self.inflight: set[Req] = set()
        self.opened = self.open = 0
        self.completed = self.incomplete_streams = self.stalled_streams = self.peak_inflight = 0
        self.max_gap = 0.0
        self.closed_loop_until = 0.0  # > 0: closed-loop mode, keep sending until then
        self.sending = True  # all_done can only be set once the schedule has ended
        self.first_done = self.last_done = 0.0
        self.all_done = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    async def connect(self) -> Conn | None:
        self.open += 1
        self.opened += 1
        try:
            _, conn = await self.loop.create_connection(lambda: Conn(self), self.host, self.port)
        except OSError as exc:
            self.open -= 1
            self.errors[f"connect:{exc.__class__.__name__}"] += 1
            return None
        return conn  # type: ignore[return-value]

    async def prewarm(self, n: int) -> None:
        for batch in range(0, n, 200):
            conns = await asyncio.gather(*(self.connect() for _ in range(min(200, n - batch))))
            self.idle.extend(c for c in conns if c is not None)

    def dispatch(self, req: Req) -> None:
        self.inflight.add(req)
        self.peak_inflight = max(self.peak_inflight, len(self.inflight))
        if self.idle:
            self.idle.pop().send(req)
        elif self.open < self.max_conns:
            self.loop.create_task(self._open_and_send(req))
        else:
            self.queue.append(req)

    async def _open_and_send(self, req: Req) -> None:
        conn = await self.connect()
        if conn is None:
            self._settle(req)
        else:
            conn.send(req)

    def finished(self, conn: Conn, req: Req, keep_alive: bool) -> None:
        self._record(req)
        if not keep_alive:
            conn.transport.close()  # lost() will hand queued work to a new connection
        elif self.closed_loop_until and req.done < self.closed_loop_until:
            t = now()
            nxt = Req(t)
            self.inflight.add(nxt)
            conn.send(nxt)
        elif self.queue:
            conn.send(self.queue.popleft())
        else:
            self.idle.append(conn)

    def lost(self, conn: Conn, req: Req | None) -> None:
        self.open -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if req is not None:
            self.errors["disconnected"] += 1
            self._settle(req)
        if self.queue and self.open < self.max_conns:
            self.loop.create_task(self._open_and_send(self.queue.popleft()))

    def _settle(self, req: Req) -> None:
        self.inflight.discard(req)
        if not self.sending and not self.inflight and not self.queue:
            self.all_done.set()

    def schedule_ended(self) -> None:
        self.sending = False
        if not self.inflight and not self.queue:
            self.all_done.set()

    def _record(self, req: Req) -> None:
        self._settle(req)
        if req.status != 200:
            self.errors[f"http:{req.status}"] += 1
            return
        self.completed += 1
        self.last_done = req.done
        self.first_done = self.first_done or req.done
        h = self.hists
        h["total"].record_value(int((req.done - req.intended) * 1e6))
        h["service"].record_value(int((req.done - req.sent) * 1e6))
        h["ttfb"].record_value(int((req.first_byte - req.intended) * 1e6))
        h["lag"].record_value(int((req.sent - req.intended) * 1e6))
        if self.stream:
            if req.first_token:
                h["ttft"].record_value(int((req.first_token - req.intended) * 1e6))
            if not req.saw_done or (self.expect_chunks and req.chunks != self.expect_chunks):
                self.incomplete_streams += 1
            if req.max_gap > self.stall_s:
                self.stalled_streams += 1
            self.max_gap = max(self.max_gap, req.max_gap)

    def timed_out(self, deadline: float) -> int:
        """Requests still unanswered at the deadline count with their latency so far (a lower bound)."""
        late = list(self.inflight) + list(self.queue)
        for req in late:
            self.hists["total"].record_value(int((deadline - req.intended) * 1e6))
        self.errors["timeout"] += len(late)
        return len(late)


def build_payload(args: argparse.Namespace) -> bytes:
    body = {"model": args.model, "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
            "max_tokens": args.max_tokens}
    if args.stream:
        body["stream"] = True
    raw = json.dumps(body, separators=(",", ":")).encode()
    head = (f"POST {args.path} HTTP/1.1\r\nhost: {args.host}:{args.port}\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {args.key}\r\ncontent-length: {len(raw)}\r\n\r\n")
    return head.encode() + raw


async def run(args: argparse.Namespace) -> dict:
    gen = LoadGen(args)
    await gen.prewarm(args.connections)
    cpu0, t_start = os.times(), now()
    if args.saturate:
        gen.closed_loop_until = t_start + args.duration
        for conn in list(gen.idle):
            gen.idle.remove(conn)
            req = Req(now())
            gen.inflight.add(req)
            conn.send(req)
        sent = None
    else:
        sent = await open_loop(gen, args.rate, args.duration)
    gen.schedule_ended()
    schedule_end = max(now(), t_start + args.duration)
    try:
        await asyncio.wait_for(gen.all_done.wait(), timeout=max(0.1, schedule_end + args.drain - now()))
    except asyncio.TimeoutError:
        gen.timed_out(now())
    elapsed = (gen.last_done or now()) - t_start
    cpu1 = os.times()
    client_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    for conn in gen.idle:
        conn.transport.close()
    return {
        "mode": "closed" if args.saturate else "open", "rate": args.rate, "duration": args.duration,
        "connections": args.connections, "sent": sent, "completed": gen.completed, "errors": dict(gen.errors),
        "elapsed": round(elapsed, 3), "throughput": round(gen.completed / elapsed, 1) if elapsed > 0 else 0.0,
        "connections_opened": gen.opened, "peak_inflight": gen.peak_inflight,
        "client_cpu_s": round(client_cpu, 3), "client_cpu_util": round(client_cpu / elapsed, 3) if elapsed else None,
        "stream": args.stream, "incomplete_streams": gen.incomplete_streams, "stalled_streams": gen.stalled_streams,
        "max_gap_ms": round(gen.max_gap * 1000, 2),
        "summary": {k: hist.summary(h) for k, h in gen.hists.items()},
        "hists": {k: hist.encode(h) for k, h in gen.hists.items() if h.get_total_count()},
    }


async def open_loop(gen: LoadGen, rate: float, duration: float) -> int:
    """Dispatch request i at t0 + i/rate. The loop's own timers tick in whole milliseconds (a shorter
    sleep spins), so a thread keeps the schedule with nanosleep and hands each due batch to the loop;
    what lateness remains is recorded as `lag`."""
    total = int(rate * duration)
    t0 = now() + 0.01
    loop = asyncio.get_running_loop()
    finished = loop.create_future()

    def dispatch(first: int, last: int) -> None:
        for k in range(first, last):
            gen.dispatch(Req(t0 + k / rate))

    def ticker() -> None:
        i = 0
        while i < total:
            wait = t0 + i / rate - now()
            if wait > 0:
                time.sleep(wait)
            t = now()
            j = i + 1
            while j < total and t0 + j / rate <= t:
                j += 1
            loop.call_soon_threadsafe(dispatch, i, j)
            i = j
        loop.call_soon_threadsafe(finished.set_result, None)

    sys.setswitchinterval(0.0002)  # the ticker gets the GIL back quickly even while the loop is busy
    threading.Thread(target=ticker, name="ticker", daemon=True).start()
    await finished
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/v1/chat/completions")
    p.add_argument("--key", default="none")
    p.add_argument("--model", default="mock")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--expect-chunks", type=int, default=0, help="content chunks a complete stream carries")
    p.add_argument("--stall-ms", type=float, default=1000.0, help="a gap longer than this is a stall")
    p.add_argument("--rate", type=float, default=1000.0, help="requests per second (open loop)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of sending (bounded)")
    p.add_argument("--drain", type=float, default=10.0, help="seconds to wait for answers after sending ends")
    p.add_argument("--connections", type=int, default=32, help="connections opened before the clock starts")
    p.add_argument("--max-connections", type=int, default=1024)
    p.add_argument("--saturate", action="store_true", help="closed loop over --connections connections")
    args = p.parse_args()
    args.max_connections = max(args.max_connections, args.connections)
    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
