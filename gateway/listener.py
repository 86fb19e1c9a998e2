"""The listening socket and the HTTP/1.1 connections behind it: the server's outermost edge.

What a client can do here before any handler runs, and what bounds it:

    connect ...............  at most ``max_connections`` sockets are accepted at a time; further
                             clients wait in the kernel's listen backlog (``backlog``) until one
                             closes, so a flood can never exhaust the process's file descriptors
    TLS handshake .........  must finish within ``header_timeout``, and counts against the cap
    request head ..........  must be complete within ``header_timeout`` of the connect or of the
                             end of the previous response (aiohttp's keep-alive timer, which also
                             runs while a head is only partly received); the connection is then
                             closed without an answer, as nginx does for ``client_header_timeout``
    body ..................  a request whose handler waits for body bytes that do not come for
                             ``body_timeout`` seconds fails with 400 RequestTimeout ("Your socket
                             connection to the server was not read from or written to within
                             the timeout period", S3 error table) and the connection closes;
                             time the handler spends elsewhere (a KMS call) does not count
    head too large ........  a line over ``max_line_size`` / a field over ``max_field_size`` /
                             more than ``max_headers`` fields -> 400 RequestHeaderSectionTooLarge
    head malformed ........  400 BadRequest "An error occurred when parsing the HTTP request."
                             (what S3's front end answers), Transfer-Encoding other than chunked
                             -> 501 NotImplemented naming the header (S3 error table)

Every error written here is an S3 XML ``<Error>`` rendered by ``gateway.middleware.render_error``
(the one renderer): aiohttp's own text/plain 400 / 500 / 504 pages never reach the wire. S3 is the
face whose answer a broken request gets because nothing tells which face it was meant for.

Why a site of our own instead of ``web.TCPSite``: asyncio's ``create_server`` accepts every
connection the kernel hands it, with no way to pause, so a connection cap there could only accept
and then drop. Here the accept loop holds a semaphore slot per open connection.
"""
from __future__ import annotations

import asyncio
import base64
import errno
import logging
import secrets
import socket
import ssl
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from gateway.context import CONTEXT, RequestContext
from gateway.access_log import REJECTED
from gateway.middleware import render_error
from gateway.s3.errors import S3Error

__all__ = ["EdgeLimits", "LimitedSite", "handler_kwargs"]

log = logging.getLogger("coffer.listener")

# S3 names its head limit in RequestHeaderSectionTooLarge (MaxSizeAllowed 8192). Bounded here
# per line and per field (aiohttp's 8190 bytes each) and by count (128 fields) rather than as an
# 8 KiB total, which long presigned URLs plus a session token can exceed.
MAX_HEAD_LINE = 8190
MAX_HEADERS = 128

_PARSE_ERROR = "An error occurred when parsing the HTTP request."
_TOO_LARGE = "Your request header section exceeds the maximum allowed size."


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The bounds of the edge (``coffer serve --header-timeout / --max-connections``)."""
    header_timeout: float = 15.0
    body_timeout: float = 20.0
    max_connections: int = 1024
    backlog: int = 128
    max_line_size: int = MAX_HEAD_LINE
    max_field_size: int = MAX_HEAD_LINE
    max_headers: int = MAX_HEADERS


def handler_kwargs(limits: EdgeLimits, access_log_class: type | None = None) -> dict:
    """``RequestHandler`` options for ``limits`` (also given to ``web.AppRunner``), with
    ``access_log_class`` (gateway.access_log) as the per-request access log and metrics."""
    # auto_decompress off: S3 stores a Content-Encoding: gzip body as sent (the header is object
    # metadata, returned on GET), and the client's MD5 / SigV4 payload hash cover those bytes.
    kwargs = {"keepalive_timeout": limits.header_timeout, "max_line_size": limits.max_line_size,
              "max_field_size": limits.max_field_size, "max_headers": limits.max_headers,
              "auto_decompress": False, "access_log": None}
    if access_log_class is not None:
        kwargs.update(access_log=logging.getLogger("coffer.access"),
                      access_log_class=access_log_class)
    return kwargs


def _wire_error(status: int, exc: BaseException | None) -> S3Error:
    if status >= 500:
        return S3Error("InternalError")
    text = str(exc or "")
    if isinstance(exc, LineTooLong) or "Too many headers" in text:
        return S3Error("RequestHeaderSectionTooLarge", _TOO_LARGE, status=400,
                       MaxSizeAllowed="8192")
    if "Request has invalid `Transfer-Encoding`" in text:     # a coding other than chunked
        return S3Error("NotImplemented", Header="Transfer-Encoding")
    return S3Error("BadRequest", _PARSE_ERROR, status=400)


_FALLBACK = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
             b'<Message>We encountered an internal error. Please try again.</Message></Error>')


def _xml_response(request: web.BaseRequest, err: S3Error) -> web.Response:
    """``err`` as S3 XML; never raises (a constant body if rendering itself fails)."""
    ctx = request.get(CONTEXT)
    if ctx is None or not ctx.request_id:
        # A request aiohttp could not parse never met the error middleware that names it.
        ctx = RequestContext(request_id=secrets.token_hex(8).upper())
        request[CONTEXT] = ctx
    request_id = ctx.request_id
    try:
        resp = render_error(request, err)
    except Exception:  # noqa: BLE001 - the renderer of last resort may not fail
        log.exception("request %s: rendering %s failed", request_id, err.code)
        resp = web.Response(status=500, body=_FALLBACK, content_type="application/xml")
    # A request aiohttp could not parse has no app, so gateway.middleware.on_prepare (which
    # names every response) does not run for it: name it here.
    resp.headers["x-amz-request-id"] = request_id
    resp.headers["x-amz-id-2"] = base64.b64encode(request_id.encode()).decode()
    resp.headers["Server"] = "Coffer"
    return resp


class EdgeRequestHandler(RequestHandler):
    """aiohttp's HTTP/1.1 connection, answering in S3 XML and telling its site when it closes."""

    __slots__ = ("_closed", "_body_timeout", "_last_read", "_watchdog")

    def __init__(self, *args, closed: asyncio.Future | None = None,
                 body_timeout: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._closed = closed
        self._body_timeout = body_timeout
        self._last_read = 0.0
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if self._closed is not None and not self._closed.done():
                self._closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        super().data_received(data)
        # A request line without a version is HTTP/0.9 to aiohttp, which would answer with an
        # "HTTP/0.9" status line and headers (0.9 has neither): refuse it as unparseable.
        for i, (msg, _) in enumerate(self._messages):
            if isinstance(msg, RawRequestMessage) and msg.version < (1, 0):
                err = BadHttpMessage("HTTP/0.9 request")
                self._messages[i] = (_ErrInfo(status=400, exc=err, message=err.message),
                                     EMPTY_PAYLOAD)
        # A framing error inside a body (a bad chunk size) is queued by aiohttp as the *next*
        # message, while the request reading that body waits for bytes that never come.
        # Fail that body instead, drop the queued error and close after the answer.
        request = self._current_request
        if request is None or not self._messages:
            return
        if isinstance(self._messages[-1][0], RawRequestMessage):
            return
        payload = request.content
        if not payload.is_eof() and payload.exception() is None:
            self._messages.pop()
            payload.set_exception(S3Error("IncompleteBody"))
            payload.feed_eof()      # nothing more will come: aiohttp must not linger on it
            self.close()

    async def _handle_request(self, request, start_time, request_handler):
        if not self._body_timeout or request.content.is_eof():
            return await super()._handle_request(request, start_time, request_handler)
        self._watchdog = self._loop.call_later(self._body_timeout, self._check_body, request)
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None

    def _check_body(self, request: web.BaseRequest) -> None:
        payload = request.content
        if payload.is_eof() or payload.exception() is not None:
            return
        self._watchdog = None
        assert self._body_timeout
        now = self._loop.time()
        # Only a handler blocked on the body is waiting for the client (aiohttp's StreamReader
        # keeps that future private). One busy elsewhere has bytes buffered or has not asked
        # yet, and reading may be paused by our own backpressure: the client's clock restarts.
        if getattr(payload, "_waiter", None) is None:
            self._last_read = now
        idle = now - self._last_read
        if idle < self._body_timeout:
            self._watchdog = self._loop.call_later(max(self._body_timeout - idle, 0.05),
                                                   self._check_body, request)
            return
        log.info("request body from %s stalled for %.0f s: RequestTimeout", request.remote, idle)
        payload.set_exception(S3Error("RequestTimeout"))
        payload.feed_eof()
        self.close()

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Parser errors (400), a handler's escaped exception (500) or timeout (504)."""
        if isinstance(exc, ConnectionError):
            # The client left mid-request (its body was cut short): nobody to answer, and
            # not a server fault to log as one. aiohttp drops the connection on this.
            log.debug("client %s disconnected mid-request: %r", request.remote, exc)
            raise ConnectionError("client disconnected") from exc
        if status >= 500:
            self.log_exception("Unhandled error answering %s", request.remote, exc_info=exc)
        else:
            # A client's malformed bytes are its problem, not ours: no traceback at ERROR
            # (aiohttp's default) that any client could use to flood the log, and no echo of
            # the bytes (they may hold a credential): the access log's one "rejected" line
            # names the parser error's class (gateway/access_log.py).
            request[REJECTED] = type(exc).__name__ if exc is not None else "BadRequest"
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; the connection is dropped")
        resp = _xml_response(request, _wire_error(status, exc))
        resp.force_close()
        return resp

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        # An HTTPException raised outside the error middleware (aiohttp's own Expect handling
        # answers 417 that way) would go out as text/plain: render it as S3 XML instead.
        if isinstance(resp, web.HTTPException) and resp.status >= 400 and not resp.prepared:
            code = "InternalError" if resp.status >= 500 else "InvalidRequest"
            err = S3Error(code, resp.reason if resp.status < 500 else None, status=resp.status)
            resp = _xml_response(request, err)
        return await super().finish_response(request, resp, start_time)


class LimitedSite(web.BaseSite):
    """A TCP site that accepts at most ``limits.max_connections`` connections at a time."""

    __slots__ = ("_host", "_port", "_limits", "_handler_kwargs", "_socks", "_accepting",
                 "_serving", "_slots")

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, *,
                 limits: EdgeLimits, ssl_context: ssl.SSLContext | None = None,
                 access_log_class: type | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=limits.backlog)
        self._host, self._port, self._limits = host, port, limits
        self._handler_kwargs = handler_kwargs(limits, access_log_class)
        self._socks: list[socket.socket] = []
        self._accepting: list[asyncio.Task] = []
        self._serving: set[asyncio.Task] = set()
        self._slots: asyncio.Semaphore | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host or '0.0.0.0'}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self._limits.max_connections)
        self._socks = await _bind(loop, self._host, self._port, self._backlog)
        self._accepting = [loop.create_task(self._accept(sock)) for sock in self._socks]

    async def stop(self) -> None:
        # Open connections are not touched: the runner's shutdown closes them after this.
        for task in self._accepting:
            task.cancel()
        self._accepting = []
        for sock in self._socks:
            sock.close()
        self._socks = []
        await super().stop()

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        assert self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                conn, _ = await loop.sock_accept(sock)
            except BaseException as exc:
                self._slots.release()
                if not isinstance(exc, OSError):
                    raise
                # EMFILE/ENFILE: out of descriptors despite the cap (another part of the
                # process holds them); back off instead of spinning on the ready socket.
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("accept failed: %s; retrying in 0.5 s", exc)
                    await asyncio.sleep(0.5)
                continue
            task = loop.create_task(self._serve(conn))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        closed = loop.create_future()
        server = self._runner.server
        assert self._slots is not None and server is not None
        try:
            await loop.connect_accepted_socket(
                lambda: EdgeRequestHandler(server, loop=loop, closed=closed,
                                           body_timeout=self._limits.body_timeout,
                                           **self._handler_kwargs),
                conn, ssl=self._ssl_context,
                ssl_handshake_timeout=self._limits.header_timeout if self._ssl_context else None)
            await closed
        except Exception as exc:  # noqa: BLE001 - TLS handshake failed or timed out
            log.debug("connection dropped before HTTP: %r", exc)
            conn.close()
        finally:
            self._slots.release()


async def _bind(loop: asyncio.AbstractEventLoop, host: str | None, port: int,
                backlog: int) -> list[socket.socket]:
    """Listening sockets for ``host`` (every address it resolves to; all when empty)."""
    infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # As asyncio does: one socket per family, so "::" does not also claim IPv4.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks
