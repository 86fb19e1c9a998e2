"""Request -> typed S3 operation.

A request is parsed once: bucket and key (path-style or virtual-host-style, the key URL-decoded;
any UTF-8 is a key, newlines included), the query, and the S3 operation name (AWS's, e.g.
``PutObject``; ``CopyObject`` / ``UploadPartCopy`` when ``x-amz-copy-source`` is sent). The name
becomes a ``gateway.s3.operations.S3Operation`` carrying the IAM actions, resources and
condition keys; ``gateway.s3.dispatch`` authorizes it and picks the handler by name.
"""
from __future__ import annotations

import re
from typing import Mapping
from urllib.parse import parse_qsl, unquote

from gateway.s3.errors import S3Error
from gateway.s3.operations import MAX_KEY_BYTES, S3Operation, make_operation

__all__ = ["parse_request", "operation_name", "validate_bucket_name", "MAX_KEY_BYTES"]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# A "%" that does not start a %XX escape: the path cannot be decoded (Python's unquote would
# keep it literally and name another key).
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")

# Sub-resources we answer; anything else on a bucket or object is NotImplemented.
_BUCKET_SUBRESOURCES_NOT_IMPLEMENTED = {
    "accelerate", "analytics", "cors", "intelligent-tiering", "inventory", "lifecycle",
    "logging", "metrics", "notification", "ownershipControls", "publicAccessBlock",
    "replication", "requestPayment", "website", "object-lock", "versions",
}
_OBJECT_SUBRESOURCES_NOT_IMPLEMENTED = {
    "retention", "legal-hold", "torrent", "restore", "select", "attributes",
}


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


def parse_request(method: str, raw_path: str, vhost_bucket: str | None,
                  headers: Mapping[str, str]) -> S3Operation:
    """Turn method + raw path (+ the headers that pick an operation) into the typed S3
    operation. Raises S3Error only (InvalidURI, KeyTooLongError, MethodNotAllowed,
    NotImplemented, InvalidArgument)."""
    path, _, raw_query = raw_path.partition("?")
    if _BAD_ESCAPE_RE.search(path):
        raise S3Error("InvalidURI")
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError as exc:
        raise S3Error("InvalidURI") from exc
    bucket, key = _split_path(decoded, vhost_bucket)
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    if key is not None and len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", Key=key[:64])
    name = operation_name(method, bucket, key, query, headers)
    if name == "CreateBucket":
        validate_bucket_name(bucket or "")
    return make_operation(name, bucket, key, query, headers)


def operation_name(method: str, bucket: str | None, key: str | None, q: Mapping[str, str],
                   headers: Mapping[str, str]) -> str:
    """The S3 operation a request names (every result is a key of ``OPERATIONS``)."""
    name = _operation(method, bucket, key, q)
    if "x-amz-copy-source" in headers:
        name = {"PutObject": "CopyObject", "UploadPart": "UploadPartCopy"}.get(name, name)
    return name


def _operation(method: str, bucket: str | None, key: str | None, q: Mapping[str, str]) -> str:
    if bucket is None:
        if method in ("GET", "HEAD"):
            return "ListBuckets"
        raise S3Error("MethodNotAllowed")
    if key is None:
        return _bucket_operation(method, q)
    return _object_operation(method, q)


def _bucket_operation(method: str, q: Mapping[str, str]) -> str:
    if "encryption" in q and method in ("GET", "PUT", "DELETE"):
        return {"GET": "GetBucketEncryption", "PUT": "PutBucketEncryption",
                "DELETE": "DeleteBucketEncryption"}[method]
    if "policy" in q and method in ("GET", "PUT", "DELETE"):
        return {"GET": "GetBucketPolicy", "PUT": "PutBucketPolicy",
                "DELETE": "DeleteBucketPolicy"}[method]
    if "tagging" in q and method in ("GET", "PUT", "DELETE"):
        return {"GET": "GetBucketTagging", "PUT": "PutBucketTagging",
                "DELETE": "DeleteBucketTagging"}[method]
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


def _object_operation(method: str, q: Mapping[str, str]) -> str:
    if "tagging" in q and method in ("GET", "PUT", "DELETE"):
        return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging",
                "DELETE": "DeleteObjectTagging"}[method]
    if "acl" in q:
        if method == "GET":
            return "GetObjectAcl"
        if method == "PUT":
            return "PutObjectAcl"
    if "attributes" in q and method == "GET":
        return "GetObjectAttributes"
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


def _refuse_subresource(q: Mapping[str, str], names: set[str]) -> None:
    for name in q:
        if name in names:
            raise S3Error("NotImplemented",
                          f"The {name} sub-resource is not implemented by Coffer")
