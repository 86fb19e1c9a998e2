"""Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
ListMultipartUploads.

Complete follows S3's rules: parts listed in ascending order (InvalidPartOrder), each named part
uploaded with the ETag given (InvalidPart), every part but the last at least 5 MiB
(EntityTooSmall). The object's ETag is ``md5(part md5s concatenated)-N``; a checksum named at
Create becomes the COMPOSITE checksum ``alg(part checksums concatenated)-N``.
"""
from __future__ import annotations

import hashlib

from aiohttp import web

from gateway.auth.payload import PayloadReader, read_body
from gateway.s3.conditional import KEY_STATE, complete_condition, upload_key_state
from gateway.s3.common import (S3Call, meta_from_headers, parse_etag, quote_etag,
                               storage_error, xml_response)
from gateway.s3.copy import copy_source_range, md5_stream, open_copy_source, source_plaintext
from gateway.s3.encryption import resolve_write_settings
from gateway.s3.errors import S3Error
from gateway.s3.listing import page_size
from gateway.s3 import mpu_checksums as mc
from gateway.s3.operations import parse_max_keys
from gateway.s3.object_put import (checksum_headers, composite_md5, etag_is_md5, sealed_stream,
                                   sse_etag, write_and_commit)
from gateway.s3.xml import children, iso8601, parse, render, text_of
from gateway.sse.envelope import part_checksums, seal_into
from gateway.sse.envelope import response_headers as sse_response_headers
from gateway.sse.headers import SSE_C, SSE_S3, parse_customer_key
from gateway.sse.record import SEALED_FIELD
from storage import errors as se
from storage.base import PartInfo, UploadInfo

__all__ = ["HANDLERS", "parse_complete_request"]

_MAX_PART_NUMBER = 10_000
_CHECKSUM_ALGORITHMS = {"CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"}


def _part_number(raw: str | None) -> int:
    try:
        number = int(raw or "")
    except ValueError:
        number = 0
    if not 1 <= number <= _MAX_PART_NUMBER:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, "
                      "inclusive", ArgumentName="partNumber", ArgumentValue=raw or "")
    return number


async def _upload(call: S3Call) -> UploadInfo:
    upload_id = call.op.query.get("uploadId", "")
    try:
        upload = await call.store.get_multipart_upload(call.bucket, upload_id)
    except se.NoSuchUpload as exc:
        raise S3Error("NoSuchUpload", UploadId=upload_id) from exc
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc
    if upload.key != call.key:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    return upload


async def create_multipart_upload(call: S3Call) -> web.StreamResponse:
    meta = meta_from_headers(call.request.headers)
    algorithm = call.request.headers.get("x-amz-checksum-algorithm")
    if algorithm is not None:
        algorithm = algorithm.upper()
        if algorithm not in _CHECKSUM_ALGORITHMS:
            raise S3Error("InvalidRequest", "Checksum algorithm provided is unsupported. Please "
                          "try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, "
                          "SHA1, SHA256]")
        meta["checksum_algorithm"] = algorithm
    kind = mc.creation_type(call.request.headers, algorithm)
    if kind is not None:
        meta[mc.MODE_FIELD] = kind
    meta[KEY_STATE] = await upload_key_state(call)
    settings = await resolve_write_settings(call, call.bucket)
    if settings is not None:
        # The upload's data key is fixed now; each part unwraps it again (S3 needs
        # kms:Decrypt for parts and for completion). Only the wrapped key is kept.
        data_key = await call.envelope.new_data_key(call.authz.caller(settings.mode), settings,
                                                    call.bucket, call.key)
        meta["sse"] = data_key.record
        del data_key
    try:
        upload = await call.store.create_multipart_upload(call.bucket, call.key, meta)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc
    headers = {"x-amz-checksum-algorithm": algorithm, "x-amz-checksum-type": kind} \
        if algorithm else {}
    headers.update(sse_response_headers(meta.get("sse"),
                                        settings.customer if settings else None))
    body = render("InitiateMultipartUploadResult", {
        "Bucket": call.bucket, "Key": call.key, "UploadId": upload.upload_id})
    return xml_response(body, headers=headers)


async def upload_part(call: S3Call) -> web.StreamResponse:
    number = _part_number(call.op.query.get("partNumber"))
    upload = await _upload(call)
    if call.op.name == "UploadPartCopy":
        return await _upload_part_copy(call, upload, number)
    record = upload.meta.get("sse")
    payload = PayloadReader(call.request.content, call.request.headers, call.auth,
                            max_size=call.config.max_object_size,
                            want_md5=etag_is_md5(record["mode"] if record else None))
    algorithm = upload.meta.get("checksum_algorithm")
    computed: dict[str, str] = {}
    plain = payload
    if algorithm is not None and not _sends(call.request.headers, algorithm):
        # The upload's algorithm is kept for every part (a FULL_OBJECT value needs them all).
        plain = mc.with_part_checksum(payload, algorithm, computed)
    chunks, sealer = await _part_stream(call, record, plain, number)
    try:
        writer = await call.store.open_part_writer(call.bucket, upload.upload_id, number)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc

    def finish():
        mc.part_algorithm_check(algorithm, payload.checksums)
        return (sse_etag(record, payload.md5_hex),
                _part_meta(sealer, payload.size, {**computed, **payload.checksums}))

    try:
        part = await write_and_commit(writer, chunks, finish)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc
    headers = {"ETag": quote_etag(part.etag),
               **sse_response_headers(record, parse_customer_key(call.request.headers))}
    # The checksums the client sent (and we verified) go back to it, sealed or not.
    headers.update({k: v for k, v in checksum_headers({"checksums": payload.checksums}).items()
                    if k != "x-amz-checksum-type"})
    return web.Response(status=200, headers=headers)


def _sends(headers, algorithm: str) -> bool:
    """Whether the client sends a checksum of ``algorithm`` (as a header or a trailer)."""
    name = f"x-amz-checksum-{algorithm.lower()}"
    return name in headers or name in headers.get("x-amz-trailer", "").lower()


async def _part_stream(call: S3Call, record, chunks, number: int):
    if record is None:
        return chunks, None
    return await sealed_stream(call, None, chunks, part=number, upload_record=record)


def _part_meta(sealer, plain_size: int, checksums: dict[str, str]) -> dict:
    meta = {"checksums": checksums, "plain": plain_size}
    if sealer is not None:
        meta["stream"] = sealer.stream_meta
        sealer.seal_checksums(meta)     # SSE-KMS / SSE-C: nothing of the plaintext in clear
    return meta


def _plain_size(part: PartInfo) -> int:
    return part.meta.get("plain", part.size)


async def _upload_part_copy(call: S3Call, upload: UploadInfo, number: int) -> web.StreamResponse:
    reader, source = await open_copy_source(call)
    record = upload.meta.get("sse")
    try:
        start, end = copy_source_range(call.request.headers.get("x-amz-copy-source-range"),
                                       reader.info.size)
        md5 = hashlib.md5()
        plain = md5_stream(await source_plaintext(call, reader, source, start, end), md5)
        chunks, sealer = await _part_stream(call, record, plain, number)
        try:
            writer = await call.store.open_part_writer(call.bucket, upload.upload_id, number)
        except se.StorageError as exc:
            raise storage_error(exc, call.bucket, call.key) from exc
        part = await write_and_commit(writer, chunks, lambda: (
            sse_etag(record, md5.hexdigest()), _part_meta(sealer, end - start, {})))
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc
    finally:
        await reader.close()
    body = render("CopyPartResult", {"LastModified": iso8601(part.last_modified),
                                     "ETag": quote_etag(part.etag)})
    return xml_response(body, headers=sse_response_headers(
        record, parse_customer_key(call.request.headers)))


def parse_complete_request(body: bytes) -> list[tuple[int, str]]:
    """A CompleteMultipartUpload body -> [(part number, ETag)]. Raises S3Error only."""
    doc = parse(body)
    if doc.tag != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    parts = []
    for elem in children(doc, "Part"):
        number_text = text_of(elem, "PartNumber")
        etag_text = text_of(elem, "ETag")
        if number_text is None or etag_text is None:
            raise S3Error("MalformedXML")
        try:
            number = int(number_text.strip())
        except ValueError as exc:
            raise S3Error("MalformedXML") from exc
        parts.append((number, parse_etag(etag_text)))
    if not parts:
        raise S3Error("MalformedXML")
    return parts


# The object record names the upload it completed, so a retried Complete can be answered.
COMPLETED_UPLOAD = "completed_upload"


async def _completed_before(call: S3Call) -> web.StreamResponse | None:
    """A Complete retried after it succeeded (its response lost) answers the same result, as
    AWS does, while the key still holds the object that upload made; else None."""
    upload_id = call.op.query.get("uploadId", "")
    try:
        info = await call.store.head_object(call.bucket, call.key)
    except se.StorageError:
        return None
    if not upload_id or info.meta.get(COMPLETED_UPLOAD) != upload_id:
        return None
    await read_body(call.request.content, call.request.headers, call.auth, 4 * 1024 * 1024)
    result = {"Location": f"/{call.bucket}/{call.key}", "Bucket": call.bucket,
              "Key": call.key, "ETag": quote_etag(info.etag)}
    return xml_response(render("CompleteMultipartUploadResult", result))


async def complete_multipart_upload(call: S3Call) -> web.StreamResponse:
    try:
        upload = await _upload(call)
    except S3Error as exc:
        done = await _completed_before(call) if exc.code == "NoSuchUpload" else None
        if done is None:
            raise
        return done
    condition = complete_condition(call, upload.meta)
    # Complete's x-amz-checksum-<alg> header is the whole object's checksum, not the XML's.
    body = await read_body(call.request.content, mc.body_headers(call.request.headers),
                           call.auth, 4 * 1024 * 1024)
    requested = parse_complete_request(body)
    numbers = [n for n, _ in requested]
    if any(b <= a for a, b in zip(numbers, numbers[1:])):
        raise S3Error("InvalidPartOrder", UploadId=upload.upload_id)
    stored = {p.part_number: p for p in await call.store.list_parts(call.bucket,
                                                                    upload.upload_id)}
    for i, (number, etag) in enumerate(requested):
        part = stored.get(number)
        if part is None or part.etag != etag:
            raise S3Error("InvalidPart", UploadId=upload.upload_id, PartNumber=str(number),
                          ETag=etag)
        if i < len(requested) - 1 and _plain_size(part) < call.config.min_part_size:
            raise S3Error("EntityTooSmall", ProposedSize=str(_plain_size(part)),
                          MinSizeAllowed=str(call.config.min_part_size),
                          PartNumber=str(number), ETag=etag)
    chosen = [stored[n] for n in numbers]
    meta = dict(upload.meta)
    meta[COMPLETED_UPLOAD] = upload.upload_id
    algorithm = meta.pop("checksum_algorithm", None)
    kind = meta.pop(mc.MODE_FIELD, mc.COMPOSITE if algorithm else None)
    mc.complete_type(call.request.headers, kind)
    meta.pop(KEY_STATE, None)
    meta["checksums"], meta["checksum_type"] = {}, None
    record = meta.get("sse")
    customer = parse_customer_key(call.request.headers)
    data_key = None
    if record is not None and (record["mode"] != SSE_C or customer is not None or (
            algorithm and any(SEALED_FIELD in p.meta for p in chosen))):
        # S3 requires kms:Decrypt on the key to complete an SSE-KMS upload, and the SSE-C
        # key when the upload was created with a checksum algorithm (CompleteMultipartUpload,
        # x-amz-server-side-encryption-customer-algorithm): the part checksums are sealed.
        data_key = await call.envelope.open_data_key(call.authz.caller(record["mode"]),
                                                     record, call.bucket,
                                                     call.key, customer)
    sums = {p.part_number: part_checksums(p.meta, data_key, call.bucket, call.key,
                                          p.part_number) for p in chosen} if algorithm else {}
    mc.check_complete_parts(algorithm, kind, upload.upload_id, requested,
                            mc.parse_complete_checksums(body), sums)
    value = None
    if algorithm and all(algorithm in sums[p.part_number] for p in chosen):
        if kind == mc.FULL_OBJECT:
            value = mc.full_object_checksum(algorithm, [
                (sums[p.part_number][algorithm], _plain_size(p)) for p in chosen])
        else:
            value = mc.composite_checksum(algorithm, [sums[p.part_number][algorithm]
                                                      for p in chosen])
        meta["checksums"], meta["checksum_type"] = {algorithm: value}, kind
    mc.verify_complete_checksum(call.request.headers, algorithm, kind, value)
    _check_object_size(call.request.headers, sum(_plain_size(p) for p in chosen))
    result_checksums = dict(meta["checksums"])
    if algorithm and (record is None or record["mode"] == SSE_S3):
        meta[mc.PARTS_FIELD] = [{"n": p.part_number, "size": _plain_size(p),
                                 "checksums": sums[p.part_number]} for p in chosen]
    etag = composite_md5([p.etag for p in chosen])
    size = None
    if record is not None:
        size = sum(_plain_size(p) for p in chosen)
        meta["sse"] = {**record, "plain_size": size,
                       "parts": [{"n": p.part_number, "plain": _plain_size(p),
                                  "stream": p.meta["stream"],
                                  **({SEALED_FIELD: p.meta[SEALED_FIELD]}
                                     if SEALED_FIELD in p.meta else {})} for p in chosen]}
        if data_key is not None:
            seal_into(data_key, call.bucket, call.key, 0, meta)
    try:
        info = await call.store.complete_multipart_upload(call.bucket, upload.upload_id, numbers,
                                                          etag, meta, size=size,
                                                          condition=condition)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc
    result = {"Location": f"/{call.bucket}/{call.key}", "Bucket": call.bucket,
              "Key": call.key, "ETag": quote_etag(info.etag)}
    for alg, checksum in result_checksums.items():
        result[f"Checksum{alg}"] = checksum
    if result_checksums:
        result["ChecksumType"] = kind
    return xml_response(render("CompleteMultipartUploadResult", result),
                        headers=sse_response_headers(record, customer))


def _check_object_size(headers, size: int) -> None:
    """x-amz-mp-object-size, when sent, must be the object's size (CompleteMultipartUpload)."""
    raw = headers.get("x-amz-mp-object-size")
    if raw is None:
        return
    if raw.strip() != str(size):
        raise S3Error("InvalidRequest", f"The provided 'x-amz-mp-object-size' header value "
                      f"{raw.strip()[:32]} does not match what was computed: {size}")


async def abort_multipart_upload(call: S3Call) -> web.StreamResponse:
    upload = await _upload(call)
    try:
        await call.store.abort_multipart_upload(call.bucket, upload.upload_id)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc
    return web.Response(status=204)


async def list_parts(call: S3Call) -> web.StreamResponse:
    info = call.info
    upload = await _upload(call)
    q = call.op.query
    max_parts = page_size(parse_max_keys(q.get("max-parts"), "max-parts"))
    try:
        marker = int(q.get("part-number-marker") or 0)
    except ValueError as exc:
        raise S3Error("InvalidArgument", "Invalid part number marker",
                      ArgumentName="part-number-marker") from exc
    parts = [p for p in await call.store.list_parts(call.bucket, upload.upload_id)
             if p.part_number > marker]
    page, truncated = parts[:max_parts], len(parts) > max_parts
    owner = {"ID": info.owner, "DisplayName": info.owner}
    algorithm = upload.meta.get("checksum_algorithm")
    data_key = None
    record = upload.meta.get("sse")
    if record is not None and any(SEALED_FIELD in p.meta for p in page):
        # Sealed part checksums need the caller's kms:Decrypt (or the SSE-C key), as AWS
        # ListParts needs them for an upload created with a checksum algorithm.
        data_key = await call.envelope.open_data_key(
            call.authz.caller(record["mode"]), record, call.bucket, call.key,
            parse_customer_key(call.request.headers))
    items = []
    for p in page:
        item = {"PartNumber": str(p.part_number), "LastModified": iso8601(p.last_modified),
                "ETag": quote_etag(p.etag), "Size": str(_plain_size(p))}
        for alg, value in part_checksums(p.meta, data_key, call.bucket, call.key,
                                         p.part_number).items():
            item[f"Checksum{alg}"] = value
        items.append(item)
    body = render("ListPartsResult", {
        "Bucket": call.bucket, "Key": call.key, "UploadId": upload.upload_id,
        "Initiator": owner, "Owner": owner, "StorageClass": "STANDARD",
        "PartNumberMarker": str(marker),
        "NextPartNumberMarker": str(page[-1].part_number) if page else None,
        "MaxParts": str(max_parts), "IsTruncated": truncated,
        "ChecksumAlgorithm": algorithm,
        "ChecksumType": upload.meta.get(mc.MODE_FIELD),
        "Part": items or None,
    })
    return xml_response(body)


async def list_multipart_uploads(call: S3Call) -> web.StreamResponse:
    info = call.info
    q = call.op.query
    max_uploads = page_size(call.op.max_keys)
    try:
        result = await call.store.list_multipart_uploads(
            call.bucket, prefix=q.get("prefix", ""), delimiter=q.get("delimiter", ""),
            key_marker=q.get("key-marker", ""), upload_id_marker=q.get("upload-id-marker", ""),
            max_uploads=max_uploads)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket) from exc
    owner = {"ID": info.owner, "DisplayName": info.owner}
    body = render("ListMultipartUploadsResult", {
        "Bucket": call.bucket,
        "KeyMarker": q.get("key-marker", ""),
        "UploadIdMarker": q.get("upload-id-marker", ""),
        "NextKeyMarker": result.next_key_marker,
        "NextUploadIdMarker": result.next_upload_id_marker,
        "Prefix": q.get("prefix") or None,
        "Delimiter": q.get("delimiter") or None,
        "MaxUploads": str(max_uploads),
        "IsTruncated": result.is_truncated,
        "Upload": [{"Key": u.key, "UploadId": u.upload_id, "Initiator": owner, "Owner": owner,
                    "StorageClass": "STANDARD", "Initiated": iso8601(u.initiated)}
                   for u in result.uploads] or None,
        "CommonPrefixes": [{"Prefix": p} for p in result.common_prefixes] or None,
    })
    return xml_response(body)


HANDLERS = {
    "CreateMultipartUpload": create_multipart_upload,
    "UploadPart": upload_part,
    "UploadPartCopy": upload_part,
    "CompleteMultipartUpload": complete_multipart_upload,
    "AbortMultipartUpload": abort_multipart_upload,
    "ListParts": list_parts,
    "ListMultipartUploads": list_multipart_uploads,
}
