"""The lean webhook transport against a raw TCP server that answers byte for byte:
keep-alive, every way a response can end, every way a server can fail, TLS."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import trustme

from operator_adapters.http_transport import LeanTransport, webhook_client


@dataclass
class RawServer:
    """Each connection runs ``answers`` in turn, one per request it reads."""

    answers: list[bytes | None] = field(default_factory=list)
    connections: int = 0
    closed: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0) if self.answers else OK
                if answer is None:  # close without a word
                    break
                if answer == HANG:
                    await self.hold.wait()
                    break
                if answer == SLOW:
                    await asyncio.sleep(0.1)
                    answer = OK
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
HANG = b"hang"
SLOW = b"slow"


@asynccontextmanager
async def raw_server(
    *answers: bytes | None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[RawServer]:
    server = RawServer(list(answers))
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.hold.set()
        listener.close()
        await listener.wait_closed()


@asynccontextmanager
async def client(**options: object) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=LeanTransport(**options), timeout=2.0) as http:  # type: ignore[arg-type]
        yield http


def url(server: RawServer, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.port}/hooks?x=1"


async def test_keeps_the_connection_and_sends_the_body_whole() -> None:
    async with raw_server() as server, client() as http:
        for n in range(3):
            response = await http.post(url(server), content=b'{"n":%d}' % n)
            assert response.status_code == 200
            assert response.text == "ok"
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /hooks?x=1 HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in first
    assert b"\r\nContent-Length: 7\r\n" in first
    assert first.endswith(b'\r\n\r\n{"n":0}')


async def test_reads_chunked_and_gzipped_answers() -> None:
    packed = gzip.compress(b'{"status":"retracted"}')
    chunked = (
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
        + b"%x\r\n" % 5
        + packed[:5]
        + b"\r\n"
        + b"%x\r\n" % (len(packed) - 5)
        + packed[5:]
        + b"\r\n0\r\n\r\n"
    )
    async with raw_server(chunked, OK) as server, client() as http:
        response = await http.post(url(server), content=b"{}")
        assert response.status_code == 202
        assert response.json() == {"status": "retracted"}
        assert (await http.post(url(server), content=b"{}")).text == "ok"
    assert server.connections == 1


async def test_a_body_that_ends_with_the_connection_is_whole_and_not_reused() -> None:
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"
    async with raw_server(until_close, OK) as server, client() as http:
        assert (await http.post(url(server), content=b"a")).text == "all of it"
        assert (await http.post(url(server), content=b"b")).text == "ok"
    assert server.connections == 2


async def test_a_stale_keep_alive_connection_is_retried_once_on_a_new_one() -> None:
    # The first connection answers once, then closes on reading the second request.
    async with raw_server(OK, None, OK) as server, client() as http:
        assert (await http.post(url(server), content=b"1")).status_code == 200
        assert (await http.post(url(server), content=b"2")).status_code == 200
    assert server.connections == 2
    assert [r[-1:] for r in server.requests] == [b"1", b"2", b"2"]


async def test_a_new_connection_closed_without_an_answer_is_an_error_not_a_loop() -> None:
    async with raw_server(None, None) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(url(server), content=b"x")
    assert server.connections == 1


async def test_a_connection_cut_mid_body_is_a_protocol_error() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc"
    async with raw_server(cut) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError, match="mid-response"):
            await http.post(url(server), content=b"x")


async def test_garbage_is_a_protocol_error() -> None:
    async with raw_server(b"SMTP ready\r\n\r\n") as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
            await http.post(url(server), content=b"x")


async def test_an_oversized_answer_is_refused() -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    async with raw_server(big) as server, client(max_response_bytes=1000) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="over 1000 bytes"):
            await http.post(url(server), content=b"x")


async def test_an_interim_100_continue_is_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nk"
    async with raw_server(answer) as server, client() as http:
        response = await http.post(url(server), content=b"x")
    assert (response.status_code, response.text) == (201, "k")


async def test_head_ends_with_the_headers() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
    async with raw_server(head, OK) as server, client() as http:
        response = await http.head(url(server))
        assert (response.status_code, response.content) == (200, b"")
        assert (await http.post(url(server), content=b"x")).text == "ok"


async def test_refused_connection_is_a_connect_error() -> None:
    async with raw_server() as server:
        port = server.port
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/", content=b"x")


async def test_no_answer_in_time_is_a_read_timeout_and_the_connection_is_dropped() -> None:
    async with raw_server(HANG, OK) as server, client() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url(server), content=b"x", timeout=0.1)
        assert (await http.post(url(server), content=b"y")).text == "ok"
    assert server.connections == 2


async def test_a_full_pool_times_out_and_a_cancelled_request_frees_its_slot() -> None:
    async with raw_server(HANG, OK) as server, client(max_connections=1) as http:
        hanging = asyncio.create_task(http.post(url(server), content=b"x"))
        while not server.requests:
            await asyncio.sleep(0.005)
        with pytest.raises(httpx.PoolTimeout):
            await http.post(url(server), content=b"y", timeout=httpx.Timeout(2.0, pool=0.05))
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
        assert (await http.post(url(server), content=b"z")).text == "ok"


async def test_tls_verifies_the_server_against_the_trusted_authority() -> None:
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_tls)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with raw_server(OK, OK, tls=server_tls) as server:
        async with client(ssl_context=trusting) as http:
            response = await http.post(url(server, "https"), content=b"x")
            assert response.text == "ok"
        async with client() as http:  # the public authorities do not know this one
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.post(url(server, "https"), content=b"x")


async def test_other_schemes_are_refused() -> None:
    async with client() as http:
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.post("ftp://127.0.0.1/x", content=b"x")


@pytest.mark.parametrize("pause_s", [0.0, 0.05])
async def test_a_surplus_answer_retires_the_connection(pause_s: float) -> None:
    """A second answer to one request, in the same segment or arriving while idle:
    the connection is out of step, so the next request must not read that answer."""
    surplus = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"
    async with raw_server(OK + (b"" if pause_s else surplus), OK) as server:
        async with client() as http:
            assert (await http.post(url(server), content=b"1")).text == "ok"
            if pause_s:
                server.writers[0].write(surplus)
                await asyncio.sleep(pause_s)
            assert (await http.post(url(server), content=b"2")).text == "ok"
    assert server.connections == 2


async def test_closing_the_transport_closes_connections_still_in_use_once_answered() -> None:
    transport = LeanTransport()
    async with raw_server(SLOW) as server:
        async with httpx.AsyncClient(transport=transport, timeout=2.0) as http:
            in_flight = asyncio.create_task(http.post(url(server), content=b"x"))
            while not server.requests:
                await asyncio.sleep(0.005)
            await transport.aclose()
            assert (await in_flight).text == "ok"
            for _ in range(100):
                if server.closed:
                    break
                await asyncio.sleep(0.01)
        assert server.closed == 1


@pytest.mark.parametrize("wire", ["lean", "httpcore"])
async def test_a_cookie_an_operator_sets_never_rides_on_the_next_webhook(wire: str) -> None:
    with_cookie = (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\nContent-Length: 2\r\n\r\nok"
    )
    async with raw_server(with_cookie, OK) as server:
        async with webhook_client(wire, 2) as http:  # type: ignore[arg-type]
            assert (await http.post(url(server), content=b"first")).status_code == 200
            assert (await http.post(url(server), content=b"second")).status_code == 200
            with pytest.raises(TypeError):
                http.cookies = {"planted": "1"}
    assert len(server.requests) == 2
    assert b"cookie" not in server.requests[1].lower()
