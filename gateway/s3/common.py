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
    }
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.auth.payload import strip_aws_chunked
from gateway.auth.types import AuthContext
from gateway.config import Config
from gateway.principal_info import Principal
from gateway.s3.errors import S3Error
from gateway.s3.operations import S3Operation
from gateway.s3.xml import http_date
from storage import errors as se
from storage.base import BucketInfo, ObjectInfo, ObjectStore

__all__ = ["S3Call", "storage_error", "meta_from_headers", "object_headers", "quote_etag",
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


def storage_error(exc: se.StorageError, bucket: str | None = None,
                  key: str | None = None) -> S3Error:
    """The one translation of storage failures to S3 codes."""
    if isinstance(exc, se.NoSuchBucket):
        return S3Error("NoSuchBucket", BucketName=bucket)
    if isinstance(exc, se.NoSuchKey):
        return S3Error("NoSuchKey", Key=key)
    if isinstance(exc, se.NoSuchUpload):
        return S3Error("NoSuchUpload")
    if isinstance(exc, se.BucketNotEmpty):
        return S3Error("BucketNotEmpty", BucketName=bucket)
    if isinstance(exc, se.BucketExists):
        return S3Error("BucketAlreadyOwnedByYou", BucketName=bucket)
    if isinstance(exc, se.InvalidPart):
        return S3Error("InvalidPart")
    if isinstance(exc, se.InvalidKey):
        return S3Error("KeyTooLongError") if key and len(key.encode()) > 1024 \
            else S3Error("InvalidArgument", "Invalid object key")
    if isinstance(exc, se.PreconditionFailed):
        return S3Error("PreconditionFailed", Condition=exc.condition)
    if isinstance(exc, se.ConditionalConflict):
        return S3Error("ConditionalRequestConflict", Key=key)
    return S3Error("InternalError")


def meta_from_headers(headers: Any) -> dict[str, Any]:
    """The stored record's content headers and user metadata, from request headers."""
    user: dict[str, str] = {}
    size = 0
    for name, value in headers.items():
        lname = name.lower()
        if lname.startswith("x-amz-meta-"):
            short = lname[len("x-amz-meta-"):]
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
            stored[name] = value
    storage_class = headers.get("x-amz-storage-class", "STANDARD")
    if storage_class not in _STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", StorageClassRequested=storage_class)
    return {"content_type": headers.get("Content-Type"), "headers": stored, "user": user,
            "storage_class": storage_class}


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
        out[f"x-amz-meta-{name}"] = value
    if meta.get("storage_class", "STANDARD") != "STANDARD":
        out["x-amz-storage-class"] = meta["storage_class"]
    return out


def xml_response(body: bytes, status: int = 200,
                 headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/xml",
                        headers=headers)
