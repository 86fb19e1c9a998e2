"""PutObject, DeleteObject, DeleteObjects: object writes and removals.

A PUT streams the verified payload into a storage writer and commits only after every digest
the client sent (Content-MD5, x-amz-content-sha256, x-amz-checksum-*) matched; the commit runs
under ``asyncio.shield`` so a client that disconnects after the last byte cannot leave a
half-committed object.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any, AsyncIterator

from aiohttp import web

from gateway.auth.payload import PayloadReader, read_body
from gateway.s3.common import (S3Call, meta_from_headers, parse_etag, quote_etag,
                               storage_error, xml_response)
from gateway.s3.conditional import check_write_preconditions, delete_condition
from gateway.s3.errors import S3Error
from gateway.s3.encryption import resolve_write_settings
from gateway.s3.xml import children, parse, render, text_of
from gateway.sse.envelope import WriteSettings, random_etag
from gateway.sse.envelope import response_headers as sse_response_headers
from gateway.sse.headers import SSE_S3, parse_customer_key
from storage import errors as se
from storage.base import ObjectInfo, ObjectWriter, PartInfo, WriteCondition

__all__ = ["HANDLERS", "write_and_commit", "checksum_headers", "check_write_preconditions",
           "sealed_stream", "sse_etag", "etag_is_md5", "parse_delete_request",
           "parse_delete_entries"]

_MAX_DELETE_KEYS = 1000


async def write_and_commit(writer: ObjectWriter, chunks: AsyncIterator[bytes],
                           finish) -> ObjectInfo | PartInfo:
    """Stream ``chunks`` into ``writer``; ``finish()`` (called after the last chunk, when all
    digests are known and verified) returns ``(etag, meta)`` or ``(etag, meta, size)`` (the
    reported size, when the stored bytes are ciphertext) for the commit."""
    try:
        async for chunk in chunks:
            await writer.write(chunk)
        etag, meta, *size = finish()
        return await asyncio.shield(writer.commit(etag, meta, size=size[0] if size else None))
    except BaseException:
        await asyncio.shield(writer.abort())
        raise


def checksum_headers(meta: dict[str, Any]) -> dict[str, str]:
    out = {}
    for alg, value in meta.get("checksums", {}).items():
        out[f"x-amz-checksum-{alg.lower()}"] = value
    if out and meta.get("checksum_type"):
        out["x-amz-checksum-type"] = meta["checksum_type"]
    return out


def _require_length(call: S3Call) -> None:
    headers = call.request.headers
    if "Content-Length" in headers or "chunked" in headers.get("Transfer-Encoding", "").lower():
        return
    raise S3Error("MissingContentLength")


async def sealed_stream(call: S3Call, settings: WriteSettings | None,
                        chunks: AsyncIterator[bytes], part: int = 0,
                        upload_record: dict[str, Any] | None = None):
    """(stream to store, sealer or None): the plaintext chunks encrypted as ``settings`` or a
    multipart upload's record say. The data key lives only as long as this request."""
    if upload_record is not None:
        customer = parse_customer_key(call.request.headers)
        data_key = await call.envelope.open_data_key(call.authz.caller(upload_record["mode"]),
                                                     upload_record,
                                                     call.bucket, call.key, customer)
    elif settings is not None:
        data_key = await call.envelope.new_data_key(call.authz.caller(settings.mode), settings,
                                                    call.bucket, call.key)
    else:
        return chunks, None
    sealer = call.envelope.sealer(data_key, call.bucket, call.key, part)
    return sealer.wrap(chunks), sealer


def etag_is_md5(mode: str | None) -> bool:
    """SSE-S3 and unencrypted objects keep the MD5 ETag; SSE-KMS and SSE-C get a random one
    (S3: "not the MD5"), so their uploads need not compute it."""
    return mode is None or mode == SSE_S3


def sse_etag(record: dict[str, Any] | None, md5_hex: str) -> str:
    if etag_is_md5(record["mode"] if record else None):
        return md5_hex
    return random_etag()


async def put_object(call: S3Call) -> web.StreamResponse:
    _require_length(call)
    meta = meta_from_headers(call.request.headers)
    settings = await resolve_write_settings(call, call.bucket)
    condition = await check_write_preconditions(call)
    payload = PayloadReader(call.request.content, call.request.headers, call.auth,
                            max_size=call.config.max_object_size,
                            want_md5=etag_is_md5(settings.mode if settings else None))
    chunks, sealer = await sealed_stream(call, settings, payload)
    try:
        writer = await call.store.open_writer(call.bucket, call.key, condition=condition)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc

    def finish():
        meta["checksums"] = dict(payload.checksums)
        meta["checksum_type"] = "FULL_OBJECT" if payload.checksums else None
        if sealer is None:
            return payload.md5_hex, meta
        meta["sse"] = sealer.object_record()
        sealer.seal_checksums(meta)     # SSE-KMS / SSE-C: nothing of the plaintext in clear
        return sse_etag(meta["sse"], payload.md5_hex), meta, payload.size

    try:
        info = await write_and_commit(writer, chunks, finish)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc
    # The checksums the client sent (and we verified) go back to it, sealed or not.
    sent = {"checksums": payload.checksums, "checksum_type": "FULL_OBJECT"}
    headers = {"ETag": quote_etag(info.etag), **checksum_headers(sent),
               **sse_response_headers(info.meta.get("sse"),
                                      settings.customer if settings else None)}
    if settings is not None and settings.context_b64:
        headers["x-amz-server-side-encryption-context"] = settings.context_b64
    return web.Response(status=200, headers=headers)


async def delete_object(call: S3Call) -> web.StreamResponse:
    condition = await delete_condition(call)
    try:
        await call.store.delete_object(call.bucket, call.key, condition=condition)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc
    return web.Response(status=204)


async def delete_objects(call: S3Call) -> web.StreamResponse:
    headers = call.request.headers
    # S3 requires an integrity header here; botocore >= 1.36 sends a CRC32 instead of MD5.
    if "Content-MD5" not in headers and not any(
            h.lower().startswith("x-amz-checksum-") or h.lower() == "x-amz-trailer"
            for h in headers):
        raise S3Error("InvalidRequest",
                      "Missing required header for this request: Content-MD5")
    body = await read_body(call.request.content, headers, call.auth, 2 * 1024 * 1024)
    quiet, entries = parse_delete_entries(body)
    deleted, errors = [], []
    for key, etag in entries:
        if len(key.encode()) > 1024:
            errors.append({"Key": key, "Code": "KeyTooLongError", "Message": "Your key is too long"})
            continue
        # S3 checks s3:DeleteObject per key (the stage decides, and notes it for the audit).
        if not await call.authz.allowed("s3:DeleteObject", key):
            errors.append({"Key": key, "Code": "AccessDenied", "Message": "Access Denied"})
            continue
        # A per-object <ETag> is that key's If-Match (AWS: userguide/conditional-deletes.html),
        # which also needs s3:GetObject on it.
        condition = WriteCondition(if_match=etag) if etag else None
        if condition is not None and etag != "*" and \
                not await call.authz.allowed("s3:GetObject", key):
            errors.append({"Key": key, "Code": "AccessDenied", "Message": "Access Denied"})
            continue
        try:
            await call.store.delete_object(call.bucket, key, condition=condition)
        except se.StorageError as exc:
            err = storage_error(exc, call.bucket, key)
            errors.append({"Key": key, "Code": err.code, "Message": err.message})
            continue
        if not quiet:
            deleted.append({"Key": key})
    result = render("DeleteResult", {"Deleted": deleted or None, "Error": errors or None})
    return xml_response(result)


def parse_delete_request(body: bytes) -> tuple[bool, list[str]]:
    """A DeleteObjects body -> (Quiet, keys). Raises S3Error (MalformedXML) only."""
    quiet, entries = parse_delete_entries(body)
    return quiet, [key for key, _ in entries]


def parse_delete_entries(body: bytes) -> tuple[bool, list[tuple[str, str | None]]]:
    """A DeleteObjects body -> (Quiet, [(key, ETag condition or None)]). Raises S3Error
    (MalformedXML) only."""
    doc = parse(body)
    if doc.tag != "Delete":
        raise S3Error("MalformedXML")
    quiet = (text_of(doc, "Quiet") or "false").strip().lower() == "true"
    objects = children(doc, "Object")
    if not objects or len(objects) > _MAX_DELETE_KEYS:
        raise S3Error("MalformedXML")
    keys = []
    for obj in objects:
        key = text_of(obj, "Key")
        if not key:
            raise S3Error("MalformedXML")
        etag = text_of(obj, "ETag")
        keys.append((key, parse_etag(etag) or None if etag is not None else None))
    return quiet, keys


def md5_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def composite_md5(part_etags: list[str]) -> str:
    """Multipart ETag: md5 of the concatenated binary part MD5s, then ``-N``."""
    digest = hashlib.md5(b"".join(bytes.fromhex(e) for e in part_etags)).hexdigest()
    return f"{digest}-{len(part_etags)}"


HANDLERS = {
    "PutObject": put_object,
    "DeleteObject": delete_object,
    "DeleteObjects": delete_objects,
}
