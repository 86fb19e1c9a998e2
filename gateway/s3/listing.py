"""ListObjects (V1) and ListObjectsV2.

botocore always asks for ``encoding-type=url`` and url-decodes Key, Prefix, Delimiter,
StartAfter, Marker, NextMarker and CommonPrefixes/Prefix only when the response carries
``<EncodingType>url</EncodingType>``. AWS encodes with form encoding that leaves ``/`` alone
(``a b`` -> ``a+b``, ``a+b`` -> ``a%2Bb``, ``100%`` -> ``100%25``).
"""
from __future__ import annotations

import base64
import binascii
from urllib.parse import quote_plus

from aiohttp import web

from gateway.s3.common import S3Call, quote_etag, storage_error, xml_response
from gateway.s3.errors import S3Error
from gateway.s3.xml import iso8601, render
from gateway.sse.record import checksum_algorithms
from storage import errors as se
from storage.base import ListResult

__all__ = ["HANDLERS", "page_size"]

_TOKEN_PREFIX = b"coffer1:"


def page_size(requested: int | None, cap: int = 1000) -> int:
    """The page a max-keys style value asks for (parsed once, by
    ``gateway.s3.operations.parse_max_keys``, for the s3:max-keys condition key and here)."""
    return cap if requested is None else min(requested, cap)


def _encoder(query: dict[str, str]):
    enc = query.get("encoding-type")
    if enc is None:
        return None, (lambda s: s)
    if enc != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request",
                      ArgumentName="encoding-type", ArgumentValue=enc)
    return "url", (lambda s: quote_plus(s, safe="/") if s else s)


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(_TOKEN_PREFIX + marker.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError) as exc:
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                      ArgumentName="continuation-token") from exc
    if not raw.startswith(_TOKEN_PREFIX):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                      ArgumentName="continuation-token")
    try:
        return raw[len(_TOKEN_PREFIX):].decode()
    except UnicodeDecodeError as exc:
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                      ArgumentName="continuation-token") from exc


async def _list(call: S3Call, start_after: str, max_keys: int) -> tuple[ListResult, dict]:
    """The page, and the owner to report (the bucket owner: objects belong to it)."""
    info = call.info
    q = call.op.query
    try:
        result = await call.store.list_objects(call.bucket, prefix=q.get("prefix", ""),
                                               delimiter=q.get("delimiter", ""),
                                               start_after=start_after, max_keys=max_keys)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket) from exc
    return result, {"ID": info.owner, "DisplayName": info.owner}


def _contents(result: ListResult, enc, owner: dict | None) -> list[dict]:
    out = []
    for obj in result.objects:
        item = {"Key": enc(obj.key), "LastModified": iso8601(obj.last_modified),
                "ETag": quote_etag(obj.etag), "Size": str(obj.size)}
        if checksum_algorithms(obj.meta):       # clear, or sealed (gateway/sse/record.py)
            item["ChecksumAlgorithm"] = checksum_algorithms(obj.meta)
        item["StorageClass"] = obj.meta.get("storage_class", "STANDARD")
        if owner is not None:
            item["Owner"] = owner
        out.append(item)
    return out


async def list_objects_v2(call: S3Call) -> web.StreamResponse:
    q = call.op.query
    enc_name, enc = _encoder(q)
    max_keys = page_size(call.op.max_keys)
    token = q.get("continuation-token")
    start_after = q.get("start-after", "")
    marker = _decode_token(token) if token is not None else start_after
    if token is not None and start_after > marker:
        marker = start_after
    result, owner = await _list(call, marker, max_keys)
    owner = owner if q.get("fetch-owner") == "true" else None
    body = {
        "Name": call.bucket,
        "Prefix": enc(q.get("prefix", "")),
        "Delimiter": enc(q["delimiter"]) if q.get("delimiter") else None,
        "MaxKeys": str(max_keys),
        "EncodingType": enc_name,
        "KeyCount": str(len(result.objects) + len(result.common_prefixes)),
        "IsTruncated": result.is_truncated,
        "ContinuationToken": token,
        "NextContinuationToken": _encode_token(result.next_marker)
        if result.is_truncated and result.next_marker else None,
        "StartAfter": enc(start_after) if start_after else None,
        "Contents": _contents(result, enc, owner) or None,
        "CommonPrefixes": [{"Prefix": enc(p)} for p in result.common_prefixes] or None,
    }
    return xml_response(render("ListBucketResult", body))


async def list_objects(call: S3Call) -> web.StreamResponse:
    q = call.op.query
    enc_name, enc = _encoder(q)
    max_keys = page_size(call.op.max_keys)
    marker = q.get("marker", "")
    result, owner = await _list(call, marker, max_keys)
    body = {
        "Name": call.bucket,
        "Prefix": enc(q.get("prefix", "")),
        "Marker": enc(marker),
        "NextMarker": enc(result.next_marker)
        if result.is_truncated and result.next_marker else None,
        "MaxKeys": str(max_keys),
        "Delimiter": enc(q["delimiter"]) if q.get("delimiter") else None,
        "EncodingType": enc_name,
        "IsTruncated": result.is_truncated,
        "Contents": _contents(result, enc, owner) or None,
        "CommonPrefixes": [{"Prefix": enc(p)} for p in result.common_prefixes] or None,
    }
    return xml_response(render("ListBucketResult", body))


HANDLERS = {"ListObjectsV2": list_objects_v2, "ListObjects": list_objects}
