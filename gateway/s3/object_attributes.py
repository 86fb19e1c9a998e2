"""GetObjectAttributes (``GET /key?attributes``): ETag, Checksum, ObjectParts, StorageClass and
ObjectSize of an object without its body.

AWS: API_GetObjectAttributes.html; the recorded answers in shared/reference/s3-surface.md
section 6:

    x-amz-object-attributes  comma-separated, any order, spaces allowed; missing or empty ->
                             400 InvalidRequest; an unknown name -> 400 InvalidArgument
    GetObjectAttributesResponse: ETag (unquoted), Checksum {ChecksumXXX, ChecksumType}
        (a COMPOSITE value without its "-N"), ObjectParts, StorageClass, ObjectSize
    ObjectParts  multipart objects only; PartsCount (the SDKs' TotalPartsCount) alone unless
                 the checksum is
                 COMPOSITE, then PartNumberMarker, NextPartNumberMarker (0 past the end),
                 MaxParts, IsTruncated and Part[{ChecksumXXX, PartNumber, Size}], paged by
                 x-amz-max-parts (default 1000) and x-amz-part-number-marker
    headers      Last-Modified (x-amz-version-id / x-amz-delete-marker belong to versioned
                 buckets, which Coffer does not keep)

Permissions are s3:GetObjectAttributes and s3:GetObject (operations.py). SSE-C objects need
their key (as GetObject); the checksums of SSE-KMS / SSE-C objects are sealed
(gateway/sse/record.py) and come back only after the caller's kms:Decrypt, so asking for
Checksum or ObjectParts of such an object without it is AccessDenied, while ETag, StorageClass
and ObjectSize need no key.
"""
from __future__ import annotations

from aiohttp import web

from gateway.s3 import mpu_checksums as mc
from gateway.s3.common import S3Call, head_call_object, xml_response
from gateway.s3.errors import S3Error
from gateway.s3.xml import http_date, render
from gateway.sse.envelope import needs_key_for_checksums, readable_checksums
from gateway.sse.headers import SSE_C, parse_customer_key
from storage.base import ObjectInfo

__all__ = ["HANDLERS", "parse_attributes", "parse_part_paging"]

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
_MAX_PARTS = 1000


def parse_attributes(raw: str | None) -> set[str]:
    """x-amz-object-attributes -> the attribute names. Raises S3Error only."""
    names = {n.strip() for n in (raw or "").split(",") if n.strip()}
    if not names:
        raise S3Error("InvalidRequest", "The x-amz-object-attributes header specifying the "
                      "attributes to be retrieved is either missing or empty")
    if not names <= set(ATTRIBUTES):
        raise S3Error("InvalidArgument", "Invalid attribute name specified.")
    return names


def _int_header(raw: str | None, name: str, default: int, low: int) -> int:
    if raw is None:
        return default
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) < low:
        raise S3Error("InvalidArgument", f"Invalid {name} header",
                      ArgumentName=name, ArgumentValue=raw[:64])
    return int(text)


def parse_part_paging(headers) -> tuple[int, int]:
    """(max parts, part number marker) from x-amz-max-parts / x-amz-part-number-marker."""
    max_parts = min(_int_header(headers.get("x-amz-max-parts"), "x-amz-max-parts",
                                _MAX_PARTS, 0), _MAX_PARTS)
    marker = _int_header(headers.get("x-amz-part-number-marker"), "x-amz-part-number-marker",
                         0, 0)
    return max_parts, marker


def _part_count(info: ObjectInfo) -> int:
    record = info.meta.get("sse") or {}
    if "parts" in record:
        return len(record["parts"])
    return len(info.part_sizes) if info.part_sizes is not None else 0


def _object_parts(info: ObjectInfo, readable: dict, parts: list, max_parts: int,
                  marker: int) -> dict | None:
    total = _part_count(info)
    if total == 0:
        return None
    if readable.get("checksum_type") != mc.COMPOSITE or not parts:
        return {"PartsCount": str(total)}
    after = [p for p in parts if p[0] > marker]
    page = after[:max_parts]
    items = [{**{f"Checksum{alg}": v for alg, v in sums.items()}, "PartNumber": str(n),
              "Size": str(size)} for n, size, sums in page]
    return {"PartsCount": str(total), "PartNumberMarker": str(marker),
            "NextPartNumberMarker": str(page[-1][0] if page else 0),
            "MaxParts": str(max_parts), "IsTruncated": len(after) > len(page),
            "Part": items or None}


async def get_object_attributes(call: S3Call) -> web.StreamResponse:
    headers = call.request.headers
    wanted = parse_attributes(headers.get("x-amz-object-attributes"))
    max_parts, marker = parse_part_paging(headers)
    version = call.op.query.get("versionId")
    if version not in (None, "null"):
        raise S3Error("InvalidArgument", "Invalid version id specified",
                      ArgumentName="versionId", ArgumentValue=version[:64])
    info = await head_call_object(call)
    record = info.meta.get("sse")
    customer = parse_customer_key(headers)
    if record is None and customer is not None:
        raise S3Error("InvalidRequest", "The encryption parameters are not applicable to "
                      "this object.")
    sums_wanted = bool(wanted & {"Checksum", "ObjectParts"})
    data_key = None
    if record is not None and (record["mode"] == SSE_C or (
            sums_wanted and needs_key_for_checksums(info.meta))):
        data_key = await call.envelope.open_data_key(call.authz.caller(record["mode"]),
                                                     record, call.bucket, call.key, customer)
    readable = readable_checksums(info.meta, data_key, call.bucket, call.key) \
        if sums_wanted else {}
    body: dict = {}
    if "ETag" in wanted:
        body["ETag"] = info.etag
    if "Checksum" in wanted and readable.get("checksums"):
        body["Checksum"] = {**{f"Checksum{alg}": value.split("-")[0]
                               for alg, value in readable["checksums"].items()},
                            "ChecksumType": readable.get("checksum_type")}
    if "ObjectParts" in wanted:
        parts = mc.object_parts(info.meta, data_key, call.bucket, call.key) \
            if readable.get("checksum_type") == mc.COMPOSITE else []
        body["ObjectParts"] = _object_parts(info, readable, parts, max_parts, marker)
    if "StorageClass" in wanted:
        body["StorageClass"] = info.meta.get("storage_class") or "STANDARD"
    if "ObjectSize" in wanted:
        body["ObjectSize"] = str(info.size)
    return xml_response(render("GetObjectAttributesResponse", body),
                        headers={"Last-Modified": http_date(info.last_modified)})


HANDLERS = {"GetObjectAttributes": get_object_attributes}
