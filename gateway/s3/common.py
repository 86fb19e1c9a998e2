"""What every S3 handler shares: the call record, metadata headers in and out, storage errors.

The gateway's part of an object's stored record (``ObjectInfo.meta``)::

    {
      "content_type": str | None,
      "headers": {"Cache-Control": ..., "Content-Disposition": ..., "Content-Encoding": ...,
                  "Content-Language": ..., "Expires": ...},      # only those sent
      "user": {"name": "value"},                                 # x-amz-meta-*, names lowercased
      "checksums": {"CRC32": "<b64>"},                           # verified at upload
      "checksum_type": "FULL_OBJECT" | "COMPOSITE",
      "storage_class": "STANDARD",
      "tags": {"key": "value"},                                  # x-amz-tagging, when any
    }
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.auth.payload import strip_aws_chunked
from gateway.auth.types import AuthContext
from gateway.config import Config
# The one Storage -> S3 table lives with the other translators (gateway.errors); handlers
# keep calling it by this name.
from gateway.errors import storage_to_s3 as storage_error
from gateway.principal_info import Principal
from gateway.s3.errors import S3Error
from gateway.s3.operations import S3Operation
from gateway.s3.rfc2047 import decode_value, encode_value
from gateway.s3.tagset import TAGS_META, parse_tagging_header
from gateway.s3.xml import http_date
from storage import errors as se
from storage.base import BucketInfo, ObjectInfo, ObjectStore

__all__ = ["S3Call", "storage_error", "head_call_object", "meta_from_headers", "object_headers", "quote_etag",
           "parse_etag", "xml_response", "USER_META_LIMIT"]

USER_META_LIMIT = 2048          # bytes of x-amz-meta-* names + values (S3 user-defined metadata)
_CONTENT_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding",
                    "Content-Language", "Expires")
_STORAGE_CLASSES = {"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
                    "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "OUTPOSTS",
                    "EXPRESS_ONEZONE", "SNOW"}


@dataclass(frozen=True, slots=True)
class S3Call:
    """One authorized S3 request on its way through a handler (built by gateway.s3.dispatch
    after the stage allowed every permission of ``op``)."""

    request: web.Request
    op: S3Operation
    auth: AuthContext
    principal: Principal
    store: ObjectStore
    config: Config
    envelope: Any                # gateway.sse.envelope.Envelope, for the call's region
    region: str                  # the bucket's region (else the signed one)
    bucket_info: BucketInfo | None   # read once by the dispatcher, when it exists
    authz: Any                   # gateway.s3.dispatch.Stage: decide / missing_key / caller

    @property
    def info(self) -> BucketInfo:
        """The request's bucket; the stage answered NoSuchBucket already if it is missing."""
        assert self.bucket_info is not None and self.bucket_info.name == self.op.bucket
        return self.bucket_info

    @property
    def bucket(self) -> str:
        assert self.op.bucket is not None
        return self.op.bucket

    @property
    def key(self) -> str:
        assert self.op.key is not None
        return self.op.key

    @property
    def account(self) -> str:
        assert not self.principal.anonymous
        return self.principal.account_id


async def head_call_object(call: S3Call) -> ObjectInfo:
    """The record of the call's object. A missing key is NoSuchKey only to callers allowed
    s3:ListBucket (the stage decides: ``call.authz.missing_key``), AccessDenied otherwise."""
    try:
        return await call.store.head_object(call.bucket, call.key)
    except se.NoSuchKey as exc:
        raise await call.authz.missing_key(call.key) from exc
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc


def _text(name: str, value: str) -> str:
    """A header value that goes into the object's record. aiohttp hands bytes that are not
    UTF-8 over as lone surrogates, which no record (JSON, UTF-8) can hold: refuse them with a
    400 rather than fail at the commit."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise S3Error("InvalidArgument", "Header value cannot be represented using UTF-8.",
                      ArgumentName=name[:64].encode("utf-8", "replace").decode()) from None
    return value


def meta_from_headers(headers: Any) -> dict[str, Any]:
    """The stored record's content headers and user metadata, from request headers."""
    user: dict[str, str] = {}
    size = 0
    for name, value in headers.items():
        lname = name.lower()
        if lname.startswith("x-amz-meta-"):
            short = _text(name, lname[len("x-amz-meta-"):])
            # RFC 2047 words stored decoded, other bytes as Latin-1 (rfc2047.py); whatever
            # still cannot be UTF-8 is refused.
            value = _text(name, decode_value(value))
            user[short] = value if short not in user else f"{user[short]},{value}"
            size += len(short.encode()) + len(value.encode())
    if size > USER_META_LIMIT:
        raise S3Error("MetadataTooLarge", Size=str(size), MaxSizeAllowed=str(USER_META_LIMIT))
    stored: dict[str, str] = {}
    for name in _CONTENT_HEADERS:
        value = headers.get(name)
        if name == "Content-Encoding":
            value = strip_aws_chunked(value)
        if value is not None:
            stored[name] = _text(name, value)
    storage_class = headers.get("x-amz-storage-class", "STANDARD")
    if storage_class not in _STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", StorageClassRequested=storage_class)
    content_type = headers.get("Content-Type")
    if content_type is not None:
        content_type = _text("Content-Type", content_type)
    out = {"content_type": content_type, "headers": stored, "user": user,
           "storage_class": storage_class}
    tags = parse_tagging_header(headers.get("x-amz-tagging"))
    if tags:
        out[TAGS_META] = tags           # committed with the object (gateway.s3.tagging)
    return out


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


def parse_etag(value: str) -> str:
    """ETags arrive quoted, unquoted (s3cmd) or entity-escaped (rclone: already decoded)."""
    return value.strip().strip('"')


def object_headers(info: ObjectInfo) -> dict[str, str]:
    """Response headers describing a stored object (GET/HEAD)."""
    meta = info.meta
    out = {
        "ETag": quote_etag(info.etag),
        "Last-Modified": http_date(info.last_modified),
        "Accept-Ranges": "bytes",
        "Content-Type": meta.get("content_type") or "binary/octet-stream",
    }
    out.update(meta.get("headers", {}))
    for name, value in meta.get("user", {}).items():
        out[f"x-amz-meta-{name}"] = encode_value(value)
    if meta.get(TAGS_META):
        out["x-amz-tagging-count"] = str(len(meta[TAGS_META]))
    if meta.get("storage_class", "STANDARD") != "STANDARD":
        out["x-amz-storage-class"] = meta["storage_class"]
    return out


def xml_response(body: bytes, status: int = 200,
                 headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/xml",
                        headers=headers)
