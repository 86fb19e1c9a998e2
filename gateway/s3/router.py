"""Request -> typed S3 operation.

A request is parsed once into an ``S3Request``: bucket and key (path-style or virtual-host-style),
the query as a dict, and the S3 operation name (AWS's, e.g. ``PutObject``) with the IAM action it
needs. Handlers dispatch on the operation name only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from gateway.s3.errors import S3Error

__all__ = ["S3Request", "parse_request", "validate_bucket_name", "MAX_KEY_BYTES"]

MAX_KEY_BYTES = 1024

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")

# Sub-resources we answer; anything else on a bucket or object is NotImplemented.
_BUCKET_SUBRESOURCES_NOT_IMPLEMENTED = {
    "accelerate", "analytics", "cors", "intelligent-tiering", "inventory", "lifecycle",
    "logging", "metrics", "notification", "ownershipControls", "publicAccessBlock",
    "replication", "requestPayment", "tagging", "website", "object-lock", "versions",
}
_OBJECT_SUBRESOURCES_NOT_IMPLEMENTED = {
    "tagging", "retention", "legal-hold", "torrent", "restore", "select", "attributes",
}


@dataclass(slots=True)
class S3Request:
    operation: str
    bucket: str | None
    key: str | None
    query: dict[str, str] = field(default_factory=dict)


def validate_bucket_name(name: str) -> None:
    """S3 bucket naming rules ("Bucket naming rules", general purpose buckets)."""
    if (not _BUCKET_RE.match(name) or ".." in name or ".-" in name or "-." in name
            or _IP_RE.match(name) or name.startswith(("xn--", "sthree-"))
            or name.endswith(("-s3alias", "--ol-s3"))):
        raise S3Error("InvalidBucketName", BucketName=name)


def _split_path(path: str, vhost_bucket: str | None) -> tuple[str | None, str | None]:
    if vhost_bucket is not None:
        key = path[1:] if path.startswith("/") else path
        return vhost_bucket, (key or None)
    trimmed = path[1:] if path.startswith("/") else path
    if not trimmed:
        return None, None
    bucket, sep, key = trimmed.partition("/")
    return bucket, (key if sep and key else None)


def parse_request(method: str, raw_path: str, vhost_bucket: str | None) -> S3Request:
    """Turn method + raw path into the S3 operation it names."""
    path, _, raw_query = raw_path.partition("?")
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError as exc:
        raise S3Error("InvalidURI") from exc
    bucket, key = _split_path(decoded, vhost_bucket)
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    if key is not None and len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", Key=key[:64])
    op = _operation(method, bucket, key, query)
    return S3Request(operation=op, bucket=bucket, key=key, query=query)


def _operation(method: str, bucket: str | None, key: str | None, q: dict[str, str]) -> str:
    if bucket is None:
        if method in ("GET", "HEAD"):
            return "ListBuckets"
        raise S3Error("MethodNotAllowed")
    if key is None:
        return _bucket_operation(method, q)
    return _object_operation(method, q)


def _bucket_operation(method: str, q: dict[str, str]) -> str:
    if "encryption" in q and method in ("GET", "PUT", "DELETE"):
        return {"GET": "GetBucketEncryption", "PUT": "PutBucketEncryption",
                "DELETE": "DeleteBucketEncryption"}[method]
    if "policy" in q and method in ("GET", "PUT", "DELETE"):
        return {"GET": "GetBucketPolicy", "PUT": "PutBucketPolicy",
                "DELETE": "DeleteBucketPolicy"}[method]
    if "policyStatus" in q and method == "GET":
        return "GetBucketPolicyStatus"
    if method == "GET":
        if "location" in q:
            return "GetBucketLocation"
        if "uploads" in q:
            return "ListMultipartUploads"
        if "acl" in q:
            return "GetBucketAcl"
        if "versioning" in q:
            return "GetBucketVersioning"
        _refuse_subresource(q, _BUCKET_SUBRESOURCES_NOT_IMPLEMENTED)
        return "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
    if method == "HEAD":
        return "HeadBucket"
    if method == "PUT":
        if "acl" in q:
            return "PutBucketAcl"
        _refuse_subresource(q, _BUCKET_SUBRESOURCES_NOT_IMPLEMENTED | {"versioning"})
        return "CreateBucket"
    if method == "DELETE":
        _refuse_subresource(q, _BUCKET_SUBRESOURCES_NOT_IMPLEMENTED)
        return "DeleteBucket"
    if method == "POST":
        if "delete" in q:
            return "DeleteObjects"
        raise S3Error("MethodNotAllowed")
    raise S3Error("MethodNotAllowed")


def _object_operation(method: str, q: dict[str, str]) -> str:
    if "acl" in q:
        if method == "GET":
            return "GetObjectAcl"
        if method == "PUT":
            return "PutObjectAcl"
    _refuse_subresource(q, _OBJECT_SUBRESOURCES_NOT_IMPLEMENTED)
    if method == "GET":
        return "ListParts" if "uploadId" in q else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if "uploadId" in q or "partNumber" in q:
            return "UploadPart"
        return "PutObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in q else "DeleteObject"
    if method == "POST":
        if "uploads" in q:
            return "CreateMultipartUpload"
        if "uploadId" in q:
            return "CompleteMultipartUpload"
        raise S3Error("MethodNotAllowed")
    raise S3Error("MethodNotAllowed")


def _refuse_subresource(q: dict[str, str], names: set[str]) -> None:
    for name in q:
        if name in names:
            raise S3Error("NotImplemented",
                          f"The {name} sub-resource is not implemented by Coffer")
