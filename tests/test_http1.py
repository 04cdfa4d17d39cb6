"""The upstream HTTP/1.1 client against real sockets on loopback: servers here write exact bytes, so each
test controls the framing (length, chunked, close-delimited), keep-alive and the failure it injects."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import pytest

from routeway.config import ConfigError, ProviderConfig
from routeway.providers import http1
from routeway.providers.http1 import ConnectFailed, Disconnected, Pool, ReadTimeout, Target, header_block
from routeway.providers.openai_compat import OpenAICompatible

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


class Server:
    """A loopback server that reads each request and lets ``answer`` write the bytes back; ``answer``
    returns whether to keep the connection for another request."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.open = 0
        self.requests: list[bytes] = []
        self.closed_by_client = asyncio.Event()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    def target(self, path: str = "/v1/chat/completions") -> Target:
        return Target.parse(f"http://127.0.0.1:{self.port}{path}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                self.requests.append(head + await reader.readexactly(length))
                if not await self.answer(reader, writer, len(self.requests)):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client.set()
        finally:
            self.open -= 1
            writer.close()


def json_answer(body: bytes = b'{"ok": true}', extra: bytes = b"") -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
                     % (len(body), extra, body))
        await writer.drain()
        return b"close" not in extra
    return answer


async def post(pool: Pool, target: Target, body: bytes = b"{}", head: float = 5, total: float = 10):
    return await pool.post(target, header_block({"content-type": "application/json"}), body,
                           connect_timeout=2, head_timeout=head, total_timeout=total)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_length_delimited_answers_reuse_one_connection() -> None:
    async def main() -> None:
        async with Server(json_answer()) as server:
            pool = Pool()
            for _ in range(3):
                response = await post(pool, server.target(), b'{"n": 1}')
                assert response.status == 200 and response.headers["content-type"] == "application/json"
                assert await response.read() == b'{"ok": true}'
            assert server.connections == 1
            first = server.requests[0]
            assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
            assert b"\r\nhost: 127.0.0.1:%d\r\n" % server.port in first and first.endswith(b'\r\n\r\n{"n": 1}')
            assert b"\r\naccept-encoding: identity\r\n" in first
            pool.close()
    run(main())


def test_sockets_left_idle_after_a_burst_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "IDLE_SECONDS", 0.2)

    async def main() -> None:
        async with Server(json_answer()) as server:
            pool = Pool()
            responses = await asyncio.gather(*(post(pool, server.target()) for _ in range(5)))
            for response in responses:
                await response.read()
            assert server.connections == 5 and server.open == 5
            await (await post(pool, server.target())).read()  # reuses one of them
            assert server.connections == 5
            await asyncio.sleep(0.7)
            assert server.open == 0  # the pool let go of every idle socket
            assert await (await post(pool, server.target())).read() == b'{"ok": true}'
            pool.close()
    run(main())


def test_an_answer_nobody_asked_for_closes_the_socket() -> None:
    async def twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        writer.write(answer + answer)  # one request, two answers
        await writer.drain()
        await asyncio.sleep(0.2)
        return True

    async def main() -> None:
        async with Server(twice) as server:
            pool = Pool()
            assert await (await post(pool, server.target())).read() == b"{}"  # the first answer was whole
            await asyncio.wait_for(server.closed_by_client.wait(), 2)  # the stray second one closed the socket
            assert await (await post(pool, server.target())).read() == b"{}"  # on a fresh socket
            assert server.connections == 2
            pool.close()
    run(main())


def test_connection_close_answers_are_not_reused() -> None:
    async def main() -> None:
        async with Server(json_answer(extra=b"connection: close\r\n")) as server:
            pool = Pool()
            for _ in range(2):
                assert await (await post(pool, server.target())).read() == b'{"ok": true}'
            assert server.connections == 2
            pool.close()
    run(main())


def test_chunked_body_arrives_piece_by_piece() -> None:
    release = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"8\r\ndata: 1\n\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"8\r\ndata: 2\n\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async def main() -> None:
        async with Server(answer) as server:
            pool = Pool()
            response = await post(pool, server.target())
            assert await response.read_some(5) == b"data: 1\n"
            release.set()
            assert await response.read_some(5) == b"data: 2\n"
            assert await response.read_some(5) == b""
            response.close()
            assert await (await post(pool, server.target())).read() == b"data: 1\ndata: 2\n"
            assert server.connections == 1  # the finished chunked answer left the connection reusable
            pool.close()
    run(main())


def test_close_delimited_body_ends_with_the_connection() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"a\":")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b" 1}")
        return False

    async def main() -> None:
        async with Server(answer) as server:
            pool = Pool()
            assert await (await post(pool, server.target())).read() == b'{"a": 1}'
            pool.close()
    run(main())


def test_gzip_body_is_inflated() -> None:
    packed = gzip.compress(b'{"zipped": true}')

    async def main() -> None:
        async with Server(json_answer(packed, b"content-encoding: gzip\r\n")) as server:
            pool = Pool()
            assert await (await post(pool, server.target())).read() == b'{"zipped": true}'
            pool.close()
    run(main())


def test_a_reused_socket_the_server_closed_is_retried_once_on_a_new_one() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        if n == 2:
            return False  # the server gives up on the idle socket just as the second request arrives
        return await json_answer()(reader, writer, n)

    async def main() -> None:
        async with Server(answer) as server:
            pool = Pool()
            assert await (await post(pool, server.target())).read() == b'{"ok": true}'
            assert await (await post(pool, server.target())).read() == b'{"ok": true}'
            assert server.connections == 2 and len(server.requests) == 3
            pool.close()
    run(main())


def test_a_new_socket_closed_without_an_answer_fails_without_retrying() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        return False

    async def main() -> None:
        async with Server(answer) as server:
            pool = Pool()
            with pytest.raises(Disconnected):
                await post(pool, server.target())
            assert len(server.requests) == 1
            pool.close()
    run(main())


def test_timeouts_for_the_head_between_reads_and_in_total() -> None:
    async def slow_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        await asyncio.sleep(1)
        return False

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(20):
            writer.write(b"2\r\nx\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)
        return False

    async def main() -> None:
        async with Server(slow_head) as server:
            with pytest.raises(ReadTimeout):
                await post(Pool(), server.target(), head=0.1)
        async with Server(trickle) as server:
            response = await post(Pool(), server.target())
            with pytest.raises(ReadTimeout) as idle:
                while await response.read_some(0.5):
                    pass
            assert not idle.value.total
            response = await post(Pool(), server.target(), total=0.3)
            with pytest.raises(ReadTimeout) as total:  # every gap is short; the whole is too long
                while await response.read_some(0.5):
                    pass
            assert total.value.total
    run(main())


def test_closing_an_unfinished_answer_cuts_the_connection() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"2\r\nx\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    async def main() -> None:
        async with Server(endless) as server:
            pool = Pool()
            response = await post(pool, server.target())
            assert await response.read_some(1)
            response.close()
            await asyncio.wait_for(server.closed_by_client.wait(), 2)
            pool.close()
    run(main())


def test_refused_connection_is_a_connect_failure() -> None:
    async def main() -> None:
        async with Server(json_answer()) as server:
            target = server.target()
        with pytest.raises(ConnectFailed):
            await post(Pool(), target)
    run(main())


def test_header_values_that_would_split_a_request_are_refused() -> None:
    with pytest.raises(ValueError):
        header_block({"x-team": "a\r\nx-injected: 1"})
    provider = ProviderConfig(name="bad", kind="openai", base_url="http://127.0.0.1:1/v1",
                              headers={"x-team": "a\nb"})
    with pytest.raises(ConfigError, match="provider 'bad'"):
        OpenAICompatible(provider, Pool(), {})


def test_https_upstream_is_verified_against_the_system_trust_store(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Hosted providers are reached over TLS: a certificate nobody vouches for is refused with a clear
    error; one from a CA the operator trusts (SSL_CERT_FILE, read by OpenSSL) is accepted."""
    import ssl

    import trustme

    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))

    async def main(trusted: bool) -> None:
        server = await asyncio.start_server(Server(json_answer())._serve, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        target = Target.parse(f"https://localhost:{port}/v1/chat/completions")
        pool = Pool()
        try:
            if not trusted:
                with pytest.raises(ConnectFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                    await post(pool, target)
                return
            for _ in range(2):
                assert await (await post(pool, target)).read() == b'{"ok": true}'
        finally:
            pool.close()
            server.close()

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    run(main(trusted=False))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    run(main(trusted=True))
