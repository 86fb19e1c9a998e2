"""Request payload verification while the body streams.

One pass over the body computes everything the request promised and S3 needs:

    MD5 (always: the ETag), SHA-256 (when x-amz-content-sha256 is hex),
    each x-amz-checksum-<alg> sent as a header or trailer, and the algorithm named by
    x-amz-sdk-checksum-algorithm (computed even when no value was sent).

Framing is chosen by x-amz-content-sha256 (clients-on-the-wire P2, P9), never by
Content-Encoding alone: ``STREAMING-*`` means aws-chunked (``gateway.auth.chunked``).
The last piece of payload is held back until every check has passed, so a consumer that
commits when it sees the final byte never commits unverified data.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import AsyncIterator, Mapping, Protocol

from gateway.auth import checksums as ck
from gateway.auth.chunked import AwsChunkedDecoder
from gateway.auth.sigv4 import (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER,
                                STREAMING_UNSIGNED_TRAILER, header_index)
from gateway.auth.types import AuthContext
from gateway.errors import Kind, RequestError

__all__ = ["PayloadReader", "read_body", "strip_aws_chunked"]

_LENGTH = re.compile(r"[0-9]{1,19}")      # ASCII digits only; int() takes others too
_MULTIPLE = "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."


class ByteStream(Protocol):
    async def readany(self) -> bytes: ...


def strip_aws_chunked(content_encoding: str | None) -> str | None:
    """Content-Encoding without the ``aws-chunked`` token; None when nothing is left (P3)."""
    if not content_encoding:
        return None
    kept = [t.strip() for t in content_encoding.split(",")
            if t.strip() and t.strip().lower() != "aws-chunked"]
    return ", ".join(kept) or None


def _invalid_checksum(name: str, where: str = "header") -> RequestError:
    return RequestError(Kind.INVALID_PAYLOAD_REQUEST, f"Value for {name} {where} is invalid.")


class PayloadReader:
    """``async for chunk in PayloadReader(request.content, request.headers, auth): ...``

    ``want_md5=False`` skips the MD5 (md5_hex stays "") unless Content-MD5 must be checked:
    encrypted objects whose ETag is not the MD5 need not pay for it.

    After a complete iteration: ``size``, ``md5_hex``, ``checksums`` (ALGORITHM -> base64,
    verified where the client sent a value), ``trailers``. Raises ``RequestError`` of kind
    INVALID_DIGEST, INVALID_PAYLOAD_REQUEST (checksum headers), INVALID_PAYLOAD_ARGUMENT,
    BODY_TOO_LARGE, INCOMPLETE_BODY, BAD_DIGEST, PAYLOAD_HASH_MISMATCH, and the framing errors
    of ``AwsChunkedDecoder``.
    """

    def __init__(self, stream: ByteStream, headers: Mapping[str, str], auth: AuthContext, *,
                 max_size: int | None = None, want_md5: bool = True) -> None:
        self._stream = stream
        self._max_size = max_size
        index = header_index(headers)

        def one(name: str) -> str | None:
            values = index.get(name)
            return values[0].strip() if values else None

        mode = auth.payload_hash
        sent = one("x-amz-content-sha256")
        if not mode.startswith("STREAMING-") and sent == STREAMING_UNSIGNED_TRAILER:
            mode = sent           # e.g. anonymous or SigV2 requests framed by an SDK
        elif not mode.startswith("STREAMING-") and sent and sent.startswith("STREAMING-"):
            raise RequestError(
                Kind.INVALID_PAYLOAD_REQUEST, "A signed streaming payload requires Signature "
                "Version 4 header authentication.")
        self._streaming = mode.startswith("STREAMING-")
        self._sha256_expected = None
        if len(mode) == 64 and not self._streaming:
            self._sha256_expected = mode.lower()

        md5 = one("content-md5")
        self._md5_expected: bytes | None = None
        if md5 is not None:
            try:
                raw = base64.b64decode(md5, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 16:
                raise RequestError(Kind.INVALID_DIGEST)
            self._md5_expected = raw

        # Checksums sent as headers.
        self._expected: dict[str, tuple[str, str]] = {}   # ALG -> (value, "header"/"trailer")
        for name in index:
            alg = ck.algorithm_for_header(name)
            if alg is None:
                continue
            value = one(name) or ""
            if not ck.is_valid_b64(alg, value):
                raise _invalid_checksum(name)
            self._expected[alg] = (value, "header")
        if len(self._expected) > 1:
            raise RequestError(Kind.INVALID_PAYLOAD_REQUEST, _MULTIPLE)

        # Checksums promised as trailers.
        trailer_names: set[str] = set()
        trailer_header = one("x-amz-trailer")
        if trailer_header:
            if mode not in (STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED_TRAILER):
                raise RequestError(
                    Kind.INVALID_PAYLOAD_REQUEST, "x-amz-trailer requires a x-amz-content-sha256 "
                    "of STREAMING-UNSIGNED-PAYLOAD-TRAILER or "
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.")
            trailer_names = {t.strip().lower() for t in trailer_header.split(",") if t.strip()}
            for t in trailer_names:
                if ck.algorithm_for_header(t) is None:
                    raise RequestError(
                        Kind.INVALID_PAYLOAD_REQUEST, "The value specified in the x-amz-trailer "
                        "header is not supported", TrailerName=t)
            if len(trailer_names) > 1 or self._expected:
                raise RequestError(Kind.INVALID_PAYLOAD_REQUEST, _MULTIPLE)
        self._trailer_algs = {ck.algorithm_for_header(t) for t in trailer_names}

        sdk = one("x-amz-sdk-checksum-algorithm")
        self._sdk_alg = None
        if sdk:
            self._sdk_alg = ck.normalize_algorithm(sdk)
            if self._sdk_alg is None:
                raise _invalid_checksum("x-amz-sdk-checksum-algorithm")
            named = set(self._expected) | self._trailer_algs
            if named and self._sdk_alg not in named:
                raise RequestError(
                    Kind.INVALID_PAYLOAD_REQUEST, "Value for x-amz-sdk-checksum-algorithm header "
                    "is invalid.")

        algs = set(self._expected) | self._trailer_algs
        if self._sdk_alg:
            algs.add(self._sdk_alg)
        self._running = {alg: ck.make_checksum(alg) for alg in sorted(algs)}
        self._md5 = hashlib.md5() if want_md5 or self._md5_expected is not None else None
        self._sha256 = hashlib.sha256() if self._sha256_expected else None

        self._decoder = None
        self._declared: int | None = None
        if self._streaming:
            if mode in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER) and auth.signing is None:
                raise RequestError(
                    Kind.INVALID_PAYLOAD_REQUEST, "A signed streaming payload requires Signature "
                    "Version 4 header authentication.")
            signing = auth.signing if mode in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER) \
                else None
            self._decoder = AwsChunkedDecoder(signing, trailer_names,
                                              expect_trailer_signature=mode.endswith("-TRAILER")
                                              and signing is not None)
            declared = one("x-amz-decoded-content-length")
        else:
            declared = one("content-length")
        if declared is not None:
            if not _LENGTH.fullmatch(declared):
                raise RequestError(
                    Kind.INVALID_PAYLOAD_ARGUMENT, "Invalid length header", ArgumentName=(
                    "x-amz-decoded-content-length" if self._streaming else "Content-Length"),
                    ArgumentValue=declared)
            self._declared = int(declared)
            if max_size is not None and self._declared > max_size:
                raise RequestError(Kind.BODY_TOO_LARGE, ProposedSize=str(self._declared),
                              MaxSizeAllowed=str(max_size))

        self.size = 0
        self.md5_hex = ""
        self.checksums: dict[str, str] = {}
        self.trailers: dict[str, str] = {}

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        pending: bytes | None = None
        while True:
            data = await self._stream.readany()
            if not data:
                break
            pieces = self._decoder.feed(data) if self._decoder is not None else (data,)
            for piece in pieces:
                if not piece:
                    continue
                self._account(piece)
                if pending is not None:
                    yield pending
                pending = piece
        self._verify()
        if pending is not None:
            yield pending

    def _account(self, piece: bytes) -> None:
        self.size += len(piece)
        if self._max_size is not None and self.size > self._max_size:
            raise RequestError(Kind.BODY_TOO_LARGE, MaxSizeAllowed=str(self._max_size))
        if self._declared is not None and self.size > self._declared:
            raise RequestError(Kind.INCOMPLETE_BODY, "The request body is longer than the declared "
                          "length.")
        if self._md5 is not None:
            self._md5.update(piece)
        if self._sha256 is not None:
            self._sha256.update(piece)
        for c in self._running.values():
            c.update(piece)

    def _verify(self) -> None:
        if self._decoder is not None:
            self.trailers = self._decoder.finish()
        if self._declared is not None and self.size != self._declared:
            raise RequestError(Kind.INCOMPLETE_BODY)
        md5 = self._md5.digest() if self._md5 is not None else b""
        if self._md5_expected is not None and not hmac.compare_digest(md5, self._md5_expected):
            raise RequestError(Kind.BAD_DIGEST, ExpectedDigest=base64.b64encode(self._md5_expected)
                          .decode(), CalculatedDigest=base64.b64encode(md5).decode())
        if self._sha256 is not None:
            got = self._sha256.hexdigest()
            if not hmac.compare_digest(got, self._sha256_expected):
                raise RequestError(
                    Kind.PAYLOAD_HASH_MISMATCH, ClientComputedContentSHA256=self._sha256_expected,
                    S3ComputedContentSHA256=got)
        expected = dict(self._expected)
        for name, value in self.trailers.items():
            alg = ck.algorithm_for_header(name)
            if alg is None:
                continue
            if not ck.is_valid_b64(alg, value):
                raise _invalid_checksum(name, "trailing header")
            expected[alg] = (value.strip(), "trailer")
        computed = {alg: c.b64() for alg, c in self._running.items()}
        for alg, (value, _where) in expected.items():
            if not hmac.compare_digest(computed[alg], value):
                raise RequestError(Kind.BAD_DIGEST, f"The {alg} you specified did not match the "
                              "calculated checksum.")
        self.md5_hex = md5.hex()
        self.checksums = computed


async def read_body(stream: ByteStream, headers: Mapping[str, str], auth: AuthContext,
                    limit: int) -> bytes:
    """A whole small body (DeleteObjects, CompleteMultipartUpload XML), verified like any
    payload; over ``limit`` bytes -> MESSAGE_TOO_LARGE (S3: MaxMessageLengthExceeded)."""
    reader = PayloadReader(stream, headers, auth, max_size=limit)
    parts: list[bytes] = []
    try:
        async for piece in reader:
            parts.append(piece)
    except RequestError as err:
        if err.kind is Kind.BODY_TOO_LARGE:
            raise RequestError(Kind.MESSAGE_TOO_LARGE) from None
        raise
    return b"".join(parts)
