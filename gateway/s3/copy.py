"""CopyObject and UploadPartCopy.

The source is read through the same reader a GET uses and streamed into a new writer, so a
copy is as atomic as a PUT. ``x-amz-metadata-directive`` COPY keeps the source's content
headers and user metadata; REPLACE takes them from the request. Copying an object onto itself
is refused unless something changes (S3: "This copy request is illegal..."); a change of
encryption counts, which is how S3 documents re-encrypting an object in place
(``coffer s3 reencrypt`` relies on it). The source's checksum algorithms carry over, recomputed
over the copied plaintext and sealed under the new data key (API_CopyObject,
x-amz-checksum-algorithm: "that checksum value will be copied to the new object by default").
"""
from __future__ import annotations

import hashlib
import re
from typing import AsyncIterator

from aiohttp import web

from gateway.auth.checksums import make_checksum, normalize_algorithm
from gateway.s3.common import S3Call, meta_from_headers, quote_etag, storage_error, xml_response
from gateway.s3.errors import S3Error
from gateway.s3.object_get import check_preconditions
from gateway.s3.encryption import resolve_write_settings
from gateway.s3.object_put import check_write_preconditions, sealed_stream, sse_etag, \
    write_and_commit
from gateway.s3.tagset import TAGS_META, parse_tagging_header, tagging_directive
from gateway.s3.xml import iso8601, render
from gateway.sse.envelope import decrypt_stream
from gateway.sse.envelope import response_headers as sse_response_headers
from gateway.sse.headers import H, parse_customer_key
from gateway.sse.record import checksum_algorithms
from storage import errors as se
from storage.base import ObjectReader

__all__ = ["HANDLERS", "open_copy_source", "copy_source_range",
           "source_plaintext", "md5_stream"]

_COPY_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d+)$")
_CHUNK = 1 << 20


async def open_copy_source(call: S3Call) -> tuple[ObjectReader, tuple[str, str]]:
    """The source named by x-amz-copy-source (the stage allowed s3:GetObject on it)."""
    assert call.op.copy_source is not None
    bucket, key = call.op.copy_source
    try:
        reader = await call.store.open_object(bucket, key)
    except se.NoSuchKey as exc:
        raise await call.authz.missing_key(key, bucket) from exc
    except se.StorageError as exc:
        raise storage_error(exc, bucket, key) from exc
    try:
        check_preconditions(call.request.headers, reader.info, prefix="x-amz-copy-source-",
                            not_modified_code="PreconditionFailed")
    except BaseException:
        await reader.close()
        raise
    return reader, (bucket, key)


def copy_source_range(value: str | None, size: int) -> tuple[int, int]:
    """``x-amz-copy-source-range: bytes=first-last`` (both required); malformed ->
    InvalidArgument, past the source's end -> InvalidRange."""
    if value is None:
        return 0, size
    m = _COPY_RANGE_RE.match(value.strip())
    if m and int(m.group(1)) <= int(m.group(2)) and int(m.group(2)) >= size:
        # A well-formed range reaching past the source's end is unsatisfiable, not malformed
        # [S3 API, UploadPartCopy, x-amz-copy-source-range; ceph s3-tests
        # test_multipart_copy_invalid_range].
        raise S3Error("InvalidRange", ActualObjectSize=str(size), RangeRequested=value[:64])
    if not m or int(m.group(2)) < int(m.group(1)):
        raise S3Error("InvalidArgument", "Range specified is not valid for source object of "
                      f"size: {size}", ArgumentName="x-amz-copy-source-range",
                      ArgumentValue=value)
    return int(m.group(1)), int(m.group(2)) + 1


async def source_plaintext(call: S3Call, reader: ObjectReader, source: tuple[str, str],
                           start: int, end: int) -> AsyncIterator[bytes]:
    """The copy source's bytes [start, end), decrypted (as the caller) when stored encrypted."""
    record = reader.info.meta.get("sse")
    customer = parse_customer_key(call.request.headers, prefix=H.COPY_PREFIX)
    if record is None:
        if customer is not None:
            raise S3Error("InvalidRequest", "The encryption parameters are not applicable to "
                          "this object.")
        return reader.read(start, end, _CHUNK)
    # The source is read in its own bucket's region, with that region's KMS keys; the copy is
    # written under a key of the destination's region (cross-region copy re-encrypts).
    envelope = call.envelope
    try:
        src_region = (await call.store.head_bucket(source[0])).region
    except se.StorageError as exc:
        raise storage_error(exc, source[0]) from exc
    if src_region and src_region != envelope.region:
        envelope = envelope.in_region(src_region)
    data_key = await envelope.open_data_key(call.authz.caller(record["mode"]), record,
                                            source[0], source[1], customer)
    return decrypt_stream(reader, reader.info, data_key, source[0], source[1], start, end,
                          _CHUNK)


async def md5_stream(chunks: AsyncIterator[bytes], md5, checksums=()) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        md5.update(chunk)
        for running in checksums:
            running.update(chunk)
        yield chunk


def _copy_checksums(headers, source_meta) -> list[str]:
    """The algorithms the copy gets: x-amz-checksum-algorithm, else the source's. A multipart
    source's COMPOSITE checksum cannot describe the single-part copy, so every value is
    recomputed over the copied plaintext as a FULL_OBJECT checksum; this also needs no key to
    open the source's sealed values (the algorithm names are not secret)."""
    asked = headers.get("x-amz-checksum-algorithm")
    if asked is None:
        return sorted({a for a in map(normalize_algorithm, checksum_algorithms(source_meta))
                       if a})
    alg = normalize_algorithm(asked)
    if alg is None:
        raise S3Error("InvalidRequest", "Checksum algorithm provided is unsupported. Please "
                      "try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, "
                      "SHA256]")
    return [alg]


def _asks_for_encryption(headers) -> bool:
    return any(h in headers for h in (H.SSE, H.C_ALG))


async def copy_object(call: S3Call) -> web.StreamResponse:
    headers = call.request.headers
    directive = headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.",
                      ArgumentName="x-amz-metadata-directive", ArgumentValue=directive)
    reader, source = await open_copy_source(call)
    try:
        src = reader.info
        if src.size > call.config.max_object_size:
            raise S3Error("InvalidRequest", "The specified copy source is larger than the "
                          "maximum allowable size for a copy source: 5368709120")
        same = source == (call.bucket, call.key)
        if directive == "REPLACE":
            meta = meta_from_headers(headers)
        else:
            meta = {k: v for k, v in src.meta.items()
                    if k not in ("checksums", "checksum_type", "sse", "completed_upload", "mpu_parts",
                                 TAGS_META)}
            if "x-amz-storage-class" in headers:
                meta["storage_class"] = meta_from_headers(headers)["storage_class"]
        # x-amz-tagging-directive: COPY keeps the source's tags, REPLACE takes the header's
        # [S3 API, CopyObject], whatever the metadata directive says.
        meta.pop(TAGS_META, None)
        tags = (parse_tagging_header(headers.get("x-amz-tagging"))
                if tagging_directive(headers) == "REPLACE" else src.meta.get(TAGS_META))
        if tags:
            meta[TAGS_META] = dict(tags)
        if (same and directive == "COPY" and "x-amz-storage-class" not in headers
                and not _asks_for_encryption(headers)):
            raise S3Error("InvalidRequest", "This copy request is illegal because it is trying "
                          "to copy an object to itself without changing the object's metadata, "
                          "storage class, website redirect location or encryption attributes.")
        settings = await resolve_write_settings(call, call.bucket)
        condition = await check_write_preconditions(call)
        md5 = hashlib.md5()
        running = {alg: make_checksum(alg) for alg in _copy_checksums(headers, src.meta)}
        plain = md5_stream(await source_plaintext(call, reader, source, 0, src.size), md5,
                           tuple(running.values()))
        chunks, sealer = await sealed_stream(call, settings, plain)
        try:
            writer = await call.store.open_writer(call.bucket, call.key, condition=condition)
        except se.StorageError as exc:
            raise storage_error(exc, call.bucket, call.key) from exc

        def finish():
            meta["checksums"] = {alg: c.b64() for alg, c in running.items()}
            meta["checksum_type"] = "FULL_OBJECT" if running else None
            if sealer is None:
                return md5.hexdigest(), meta
            meta["sse"] = sealer.object_record()
            sealer.seal_checksums(meta)     # SSE-KMS / SSE-C: nothing of the plaintext in clear
            return sse_etag(meta["sse"], md5.hexdigest()), meta, sealer.plain_size

        try:
            info = await write_and_commit(writer, chunks, finish)
        except se.StorageError as exc:
            raise storage_error(exc, call.bucket, call.key) from exc
    finally:
        await reader.close()
    # The caller just read the plaintext, so the checksums go back to it, sealed or not.
    body = render("CopyObjectResult", {"LastModified": iso8601(info.last_modified),
                                       "ETag": quote_etag(info.etag),
                                       **{f"Checksum{alg}": c.b64()
                                          for alg, c in running.items()}})
    return xml_response(body, headers=sse_response_headers(
        info.meta.get("sse"), settings.customer if settings else None))


HANDLERS = {"CopyObject": copy_object}
