"""Fuzzing the edge connection (gateway.listener.EdgeRequestHandler) directly, without sockets:
whatever bytes arrive, in whatever pieces, every answer the connection writes is a well-formed
HTTP response, every error among them is S3 XML, and none is a 500 (issue 11, section 1).

The connection runs aiohttp's real parser over an in-memory transport, with a handler that
answers 200 to anything that parses; what is under test is the edge's own error path.
"""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from aiohttp import web
from aiohttp.web_server import Server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.listener import EdgeLimits, EdgeRequestHandler, handler_kwargs
from gateway.middleware import error_middleware

pytestmark = pytest.mark.fuzz


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False

    def write(self, data) -> None:
        self.out += data

    def writelines(self, lines) -> None:
        for line in lines:
            self.out += line

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("192.0.2.1", 1234), "sockname": ("127.0.0.1", 9000)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


async def _read_all(request: web.BaseRequest) -> web.StreamResponse:
    await request.read()
    return web.Response(text="ok")


async def _ok(request: web.BaseRequest) -> web.StreamResponse:
    return await error_middleware(request, _read_all)     # as gateway.app wires it


def _responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, raw
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1."), lines[0]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", 0))
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


_LOOP = asyncio.new_event_loop()
_KWARGS = {**handler_kwargs(EdgeLimits()), "keepalive_timeout": 0}


async def _feed(pieces: list[bytes]) -> bytes:
    server = Server(_ok, loop=_LOOP)
    proto = EdgeRequestHandler(server, loop=_LOOP, body_timeout=None, **_KWARGS)
    transport = _Transport()
    proto.connection_made(transport)
    for piece in pieces:
        if transport.closed:
            break
        proto.data_received(piece)
        for _ in range(3):
            await asyncio.sleep(0)
    proto.connection_lost(None)
    for _ in range(3):
        await asyncio.sleep(0)
    return bytes(transport.out)


_TEMPLATES = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    b"POST / HTTP/1.0\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
]


def _requests(script: bytes) -> list[bytes]:
    """Bytes to send, in up to three pieces, derived from ``script`` (one hypothesis draw
    keeps generation cheap enough for 10,000 cases): one or two valid requests (pipelined)
    with 4-byte groups of the script overwriting or inserting junk, or raw script bytes."""
    head, rest = script[0], script[1:]
    if head % 8 == 0:
        raw = rest
    else:
        buf = bytearray(_TEMPLATES[head % len(_TEMPLATES)])
        if head & 0x80:
            buf += _TEMPLATES[(head >> 3) % len(_TEMPLATES)]
        for i in range(0, len(rest) - 3, 4):
            pos = rest[i] * len(buf) // 256
            junk = rest[i + 2:i + 4][:1 + rest[i + 1] % 2]
            if rest[i + 1] & 0x80:
                buf[pos:pos] = junk
            else:
                buf[pos:pos + len(junk)] = junk
        raw = bytes(buf)
    cuts = sorted({b * len(raw) // 256 for b in script[-2:]})
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)]) if raw[a:b]]


@settings(max_examples=10_000, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.binary(min_size=1, max_size=40))
def test_every_answer_is_s3_xml_or_success_never_500(script):
    pieces = _requests(script)
    for status, headers, body in _responses(_LOOP.run_until_complete(_feed(pieces))):
        assert status != 500, body
        if status >= 400:
            assert headers.get("content-type") == "application/xml", (status, headers, body)
            assert ET.fromstring(body).findtext("Code"), body
