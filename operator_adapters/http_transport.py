"""A lean HTTP/1.1 transport for httpx, for the adapters' webhook POSTs.

Why not httpx's own transport: a webhook POST through httpcore and h11 costs
1.1-1.6 ms of CPU on this project's 2-core machines, the adapter process's biggest item,
and the three operators' deliveries of one alert queue behind each other on its one
event loop. This transport keeps httpx's client (its API, headers, auth, errors and
timeouts config) and replaces only the wire: an asyncio protocol per connection, the
request written in one call, the response parsed by httptools (llhttp, in C, as
uvicorn uses). Measured in ``bench/http_transport.py``.

What it deliberately does not do, because webhooks do not need it: HTTP/2, request
bodies streamed in chunks (the body is read whole first), responses streamed to the
caller (they are read whole, up to ``max_response_bytes``), upgrades and proxies
(httpx still mounts its own proxy transports from the environment).
``KAYIP_WEBHOOK_TRANSPORT=httpcore`` switches back to httpx's transport.

Errors are httpx's own, so callers classify them as before: ``ConnectError`` /
``ConnectTimeout`` (nothing was sent), ``ReadTimeout``, ``WriteTimeout``,
``RemoteProtocolError``, ``PoolTimeout``. A request on a reused keep-alive connection
that the server closed before answering anything is sent once more on a new
connection, as browsers do: almost always the server was closing the idle connection
as the request arrived, and should it have acted on it anyway, webhooks carry an id
receivers deduplicate on.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal, cast

import certifi
import httptools
import httpx

#: Read whole; a receipt is a few hundred bytes, and a hostile endpoint must not fill memory.
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20
#: Idle connections older than this are closed rather than reused (httpx's default).
DEFAULT_KEEPALIVE_EXPIRY_S = 5.0

Origin = tuple[str, str, int]


class _ServerClosed(Exception):
    """The server closed the connection before any byte of a response."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: at most one request at a time, parsed by httptools."""

    def __init__(self, max_response_bytes: int) -> None:
        self._max_response_bytes = max_response_bytes
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[None] | None = None
        self._can_write: asyncio.Future[None] | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self._reset()

    def _reset(self, head_request: bool = False) -> None:
        """A fresh parser and answer state for the next request on this connection."""
        self._parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self._body_size = 0
        self._too_large = False
        self._started = False
        self._headers_done = False
        self.status_code = 0
        self._keep_alive = False
        self._complete = False
        #: llhttp cannot be told a response answers HEAD (no body despite its
        #: Content-Length): the answer ends with the headers and the connection closes.
        self._head_request = head_request

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for: this connection is not in step
            return
        self._started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            if self._too_large:
                limit = self._max_response_bytes
                self._fail(httpx.RemoteProtocolError(f"response body over {limit} bytes"))
            else:
                self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        answer = self._answer
        if answer is None or answer.done():
            return
        if not self._started:
            answer.set_exception(_ServerClosed())
        elif self._headers_done and self._reads_until_close():
            self._complete = True  # a body delimited by the end of the connection
            answer.set_result(None)
        else:
            reason = "" if exc is None else f" ({type(exc).__name__})"
            answer.set_exception(
                httpx.RemoteProtocolError(f"the server closed the connection mid-response{reason}")
            )

    def pause_writing(self) -> None:
        self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self._can_write = None

    # -- httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            self.close()  # a second answer to one request: this connection is not in step

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._complete:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._complete or self._informational():
            return
        self._headers_done = True
        self.status_code = int(self._parser.get_status_code())
        self._keep_alive = bool(self._parser.should_keep_alive())  # only valid here
        if self._head_request:
            self._complete = True
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._complete:
            return
        self._body_size += len(body)
        if self._body_size > self._max_response_bytes:
            self._too_large = True
            raise httptools.HttpParserError("response body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self._complete:
            return
        if self._informational():
            self.headers = []  # 100 Continue and the like: the real answer follows
            return
        self._complete = True
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)

    # -- use ---------------------------------------------------------------------

    def keep_alive(self) -> bool:
        return self._keep_alive and self._complete and not self._head_request and not self.closed

    def _informational(self) -> bool:
        return 100 <= self._parser.get_status_code() < 200

    def _reads_until_close(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()

    async def exchange(
        self, payload: bytes, write_timeout: float | None, head_request: bool = False
    ) -> asyncio.Future[None]:
        """Write one request; the returned future completes with the whole response."""
        if self.closed or self._transport is None or self._transport.is_closing():
            raise _ServerClosed()
        self._reset(head_request)
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(payload)
        if self._can_write is not None:
            try:
                async with asyncio.timeout(write_timeout):
                    await asyncio.shield(self._can_write)
            except TimeoutError as exc:
                self.close()
                raise httpx.WriteTimeout("timed out sending the request") from exc
        return self._answer

    def close(self) -> None:
        self.closed = True
        if self._answer is not None and not self._answer.done():
            self._answer.cancel()  # whoever waited has given up (timeout, cancellation)
        if self._transport is not None:
            self._transport.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive and a bounded pool; see the module docstring."""

    def __init__(
        self,
        max_connections: int = 10,
        keepalive_expiry_s: float = DEFAULT_KEEPALIVE_EXPIRY_S,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._keepalive_expiry_s = keepalive_expiry_s
        self._max_response_bytes = max_response_bytes
        self._ssl_context = ssl_context
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        if request.url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {request.url.scheme!r}")
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
        payload = _serialise(request, await request.aread())
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free connection in the pool") from exc
        try:
            return await self._send(request, payload, timeouts)
        finally:
            self._slots.release()

    async def _send(
        self, request: httpx.Request, payload: bytes, timeouts: Mapping[str, float | None]
    ) -> httpx.Response:
        origin = _origin(request.url)
        conn = self._reusable(origin)
        if conn is not None:
            try:
                return await self._exchange(request, conn, origin, payload, timeouts)
            except _ServerClosed:
                pass  # it went stale between requests: once more on a new connection
        conn = await self._connect(origin, timeouts.get("connect"))
        try:
            return await self._exchange(request, conn, origin, payload, timeouts)
        except _ServerClosed as exc:
            raise httpx.RemoteProtocolError("the server closed the connection") from exc

    async def _exchange(
        self,
        request: httpx.Request,
        conn: _Connection,
        origin: Origin,
        payload: bytes,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        try:
            answer = await conn.exchange(
                payload, timeouts.get("write"), head_request=request.method == "HEAD"
            )
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    await answer
            except TimeoutError as exc:
                raise httpx.ReadTimeout("timed out waiting for the response") from exc
        except BaseException:
            conn.close()  # its state is unknown: never reuse it
            raise
        response = httpx.Response(
            conn.status_code,
            headers=conn.headers,
            stream=httpx.ByteStream(b"".join(conn.body)),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )
        if conn.keep_alive() and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, deque()).append(conn)
        else:
            conn.close()
        return response

    def _reusable(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used is the least likely to be stale
            if not conn.closed and now - conn.idle_since < self._keepalive_expiry_s:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        tls = self._tls() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        limit = self._max_response_bytes
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(limit),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = default_ssl_context()
        return self._ssl_context

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


class _NoCookies(httpx.Cookies):
    """A cookie jar that never keeps one (see :class:`WebhookClient`)."""

    def extract_cookies(self, response: httpx.Response) -> None:  # noqa: ARG002
        return None


class WebhookClient(httpx.AsyncClient):
    """An httpx client that neither keeps nor sends cookies.

    Why: a webhook is one self-contained signed request. A cookie an operator's endpoint
    set must not ride along on the next alert's delivery: state carried from one alert
    to the next is nothing an operator should be able to plant in a public-safety
    sender. It is also cheaper: httpx passes every response through the standard
    library's cookie jar, a third of its own cost per POST (bench/RESULTS.md,
    "Session 11").
    """

    def __init__(self, **kwargs: Any) -> None:
        self._no_cookies = _NoCookies()
        super().__init__(**kwargs)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:  # noqa: ARG002
        raise TypeError("a webhook client keeps no cookies")


def webhook_client(wire: Literal["lean", "httpcore"], max_connections: int) -> httpx.AsyncClient:
    """An adapter's client on the configured wire (``KAYIP_WEBHOOK_TRANSPORT``)."""
    if wire == "lean":
        return WebhookClient(transport=LeanTransport(max_connections=max_connections))
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return WebhookClient(limits=limits)


def default_ssl_context() -> ssl.SSLContext:
    """Verified TLS like httpx's default: certifi's CA bundle unless SSL_CERT_FILE names one."""
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


def _origin(url: httpx.URL) -> Origin:
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host, port)


def _serialise(request: httpx.Request, body: bytes) -> bytes:
    """Request line, headers and body as one buffer: one write, one segment when small."""
    target = request.url.raw_path
    lines = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    has_length = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            continue  # the body is whole: it goes with a Content-Length
        if lowered == b"content-length":
            has_length = True
        lines += [name, b": ", value, b"\r\n"]
    if not has_length and (body or request.method not in ("GET", "HEAD")):
        lines += [b"Content-Length: ", str(len(body)).encode("ascii"), b"\r\n"]
    lines += [b"\r\n", body]
    return b"".join(lines)
