"""GetObject and HeadObject: conditional requests, ranges, ``response-*`` overrides.

``response-*`` overrides are honoured on signed requests only: an anonymous request carrying
one is InvalidRequest [S3 API, GetObject, "Overriding response header values through the
request": "you must sign the request ... These parameters cannot be used with an unsigned
(anonymous) request"].

Preconditions follow RFC 9110 section 13.2.2 as S3 applies them: If-Match, then
If-Unmodified-Since (ignored when If-Match is present), then If-None-Match, then
If-Modified-Since (ignored when If-None-Match is present). A failed If-None-Match /
If-Modified-Since on GET or HEAD is 304; a failed If-Match / If-Unmodified-Since is 412.
"""
from __future__ import annotations

import logging
import re
from email.utils import parsedate_to_datetime
from typing import AsyncIterator

from aiohttp import web

from gateway.context import request_id_of
from gateway.errors import sse_to_s3
from gateway.s3.common import S3Call, object_headers, parse_etag, storage_error
from gateway.sse.envelope import decrypt_stream, needs_key_for_checksums, readable_checksums
from gateway.sse.envelope import response_headers as sse_response_headers
from gateway.sse.headers import SSE_C, SSE_KMS, parse_customer_key, refuse_sse_on_read
from gateway.sse.stream import SSEError
from gateway.s3.errors import S3Error
from gateway.s3.mpu_checksums import part_read_checksums
from gateway.s3.object_put import checksum_headers
from storage import errors as se
from storage.base import ObjectInfo

__all__ = ["HANDLERS", "parse_range", "check_preconditions"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
_STREAM_CHUNK = 1 << 20

log = logging.getLogger("coffer.gateway")


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` -> (start, end exclusive); None means the whole object.

    A syntactically invalid or multi-range header is ignored, as S3 does; a well-formed but
    unsatisfiable one is InvalidRange (416).
    """
    if not value:
        return None
    m = _RANGE_RE.match(value.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size
    start = int(first)
    end = int(last) + 1 if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size)


def _unsatisfiable(size: int) -> S3Error:
    return S3Error("InvalidRange", headers={"Content-Range": f"bytes */{size}"},
                   ActualObjectSize=str(size))


def _http_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def check_preconditions(headers, info: ObjectInfo, *, prefix: str = "",
                        not_modified_code: str = "NotModified") -> None:
    """Raise PreconditionFailed / NotModified per the rules in the module docstring.

    ``prefix`` is ``x-amz-copy-source-`` for CopyObject's source conditions, where a failed
    If-None-Match / If-Modified-Since is PreconditionFailed, not NotModified.
    """
    last_modified = int(info.last_modified)
    if_match = headers.get(prefix + "If-Match")
    if_none = headers.get(prefix + "If-None-Match")
    if if_match is not None:
        tags = [parse_etag(t) for t in if_match.split(",")]
        if "*" not in tags and info.etag not in tags:
            raise S3Error("PreconditionFailed", Condition=prefix + "If-Match")
    else:
        since = _http_time(headers.get(prefix + "If-Unmodified-Since"))
        if since is not None and last_modified > since:
            raise S3Error("PreconditionFailed", Condition=prefix + "If-Unmodified-Since")
    if if_none is not None:
        tags = [parse_etag(t) for t in if_none.split(",")]
        if "*" in tags or info.etag in tags:
            raise _not_modified(info, not_modified_code, prefix + "If-None-Match")
    else:
        since = _http_time(headers.get(prefix + "If-Modified-Since"))
        if since is not None and last_modified <= since:
            raise _not_modified(info, not_modified_code, prefix + "If-Modified-Since")


def _not_modified(info: ObjectInfo, code: str, condition: str) -> S3Error:
    if code == "NotModified":
        return S3Error("NotModified", headers={"ETag": f'"{info.etag}"'})
    return S3Error(code, Condition=condition)


def _part_range(call: S3Call, info: ObjectInfo) -> tuple[int, int] | None:
    raw = call.op.query.get("partNumber")
    if raw is None:
        return None
    try:
        number = int(raw)
    except ValueError as exc:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, "
                      "inclusive", ArgumentName="partNumber", ArgumentValue=raw) from exc
    record = info.meta.get("sse") or {}
    # Encrypted parts are stored with their tags: use the plaintext part sizes.
    sizes = [p["plain"] for p in record["parts"]] if "parts" in record \
        else info.part_sizes or [info.size]
    if not 1 <= number <= len(sizes):
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable",
                      status=416)
    start = sum(sizes[:number - 1])
    return start, start + sizes[number - 1]


def _refuse_anonymous_overrides(call: S3Call) -> None:
    if call.principal.anonymous and any(p in call.op.query for p in _OVERRIDES):
        raise S3Error("InvalidRequest", "Request specific response headers cannot be used for "
                      "anonymous GET requests.")


def _response_headers(call: S3Call, info: ObjectInfo) -> dict[str, str]:
    headers = object_headers(info)
    for param, header in _OVERRIDES.items():
        if param in call.op.query:
            headers[header] = call.op.query[param]
    return headers


async def get_object(call: S3Call) -> web.StreamResponse:
    refuse_sse_on_read(call.request.headers)
    _refuse_anonymous_overrides(call)
    head = call.request.method == "HEAD"
    try:
        reader = await call.store.open_object(call.bucket, call.key)
    except se.NoSuchKey as exc:
        # S3 reveals a missing key only to callers allowed s3:ListBucket.
        raise await call.authz.missing_key(call.key) from exc
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc
    try:
        info = reader.info
        check_preconditions(call.request.headers, info)
        headers = _response_headers(call, info)
        part = _part_range(call, info)
        rng = part or parse_range(call.request.headers.get("Range"), info.size)
        if part is not None:
            headers["x-amz-mp-parts-count"] = str(len(info.part_sizes or [1]))
        status = 200
        start, end = 0, info.size
        # Full-object checksums only on full-object reads (a ranged response with them
        # breaks botocore's validation); a part read gets the part's (mpu_checksums).
        want_checksums = (rng is None or part is not None) and \
            call.request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
        if rng is not None:
            start, end = rng
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}" \
                if end > start else f"bytes */{info.size}"
        headers["Content-Length"] = str(end - start)
        record = info.meta.get("sse")
        customer = parse_customer_key(call.request.headers)
        headers.update(sse_response_headers(record, customer))
        if record is None and customer is not None:
            raise S3Error("InvalidRequest", "The encryption parameters are not applicable to "
                          "this object.")
        # HEAD needs the data key (the caller's kms:Decrypt) only for SSE-C's key check and
        # for checksums of SSE-KMS / SSE-C objects (AWS HeadObject, ChecksumMode).
        data_key = None
        if record is not None and (not head or record["mode"] == SSE_C or (
                want_checksums and needs_key_for_checksums(info.meta))):
            data_key = await call.envelope.open_data_key(call.authz.caller(record["mode"]),
                                                         record, call.bucket, call.key,
                                                         customer)
        if want_checksums:
            readable = readable_checksums(info.meta, data_key, call.bucket, call.key)
            if part is not None:
                readable = part_read_checksums(info.meta, readable, data_key, call.bucket,
                                               call.key, int(call.op.query["partNumber"]))
            headers.update(checksum_headers(readable))
        if head:
            if record is not None and record["mode"] == SSE_KMS:
                call.authz.check_key_use(SSE_KMS)   # HEAD needs no key, but SigV4 all the same
            resp = web.StreamResponse(status=status, headers=headers)
            await resp.prepare(call.request)
            return resp
        body = plaintext(reader, data_key, call.bucket, call.key, start, end)
        # Pull the first piece before answering: a failure there (wrong key, tampered data)
        # is still an error response, not a truncated 200.
        try:
            first = await anext(body, None)
        except SSEError as exc:
            log.error("request %s: stored object %s/%s failed authentication",
                      request_id_of(call.request), call.bucket, call.key)
            raise sse_to_s3(exc) from exc
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(call.request)
        if first is not None:
            await resp.write(first)
        try:
            async for chunk in body:
                await resp.write(chunk)
        except SSEError:
            # Authentication failed mid-body: abort the connection so the client sees a
            # truncated body, never a complete-looking wrong one (DESIGN.md, coffer-sse/1).
            log.error("request %s: %s/%s failed authentication mid-stream",
                      request_id_of(call.request), call.bucket, call.key)
            if call.request.transport is not None:
                call.request.transport.close()
            return resp
        await resp.write_eof()
        return resp
    finally:
        await reader.close()


def plaintext(reader, data_key, bucket: str, key: str, start: int,
              end: int) -> AsyncIterator[bytes]:
    """The object's bytes [start, end), decrypted with ``data_key`` when stored encrypted."""
    if data_key is None:
        return reader.read(start, end, _STREAM_CHUNK)
    return decrypt_stream(reader, reader.info, data_key, bucket, key, start, end,
                          _STREAM_CHUNK)


HANDLERS = {"GetObject": get_object, "HeadObject": get_object}
