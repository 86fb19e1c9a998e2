"""The typed S3 operation: what a request asks for, in the terms authorization needs.

The router (``gateway.s3.router``) names the operation; this module turns the name plus the
request into an ``S3Operation``::

    S3Operation
      name          AWS's operation name ("GetObject", "UploadPartCopy", ...)
      bucket, key   path-style or virtual-host-style, key URL-decoded
      query         the query string (read-only)
      permissions   (Permission(action, resource ARN, bucket, key, conditions), ...): every IAM
                    action the request needs, checked by gateway.s3.dispatch before the handler
      conditions    the condition-key values the request itself carries (SSE headers,
                    s3:x-amz-copy-source, s3:prefix / s3:delimiter / s3:max-keys, s3:x-amz-acl)
      event         DATA or MANAGEMENT (CloudTrail's eventCategory)
      copy_source   (bucket, key) of CopyObject / UploadPartCopy
      max_keys      max-keys (ListObjects*) / max-uploads (ListMultipartUploads) as requested

``OPERATIONS`` is the one table of every operation the router can produce, with its action and
resource scope [S3 UG, "Actions, resources, and condition keys for Amazon S3"]:

    object ops     arn:aws:s3:::bucket/key
    bucket ops     arn:aws:s3:::bucket
    ListBuckets    arn:aws:s3:::*  (s3:ListAllMyBuckets has no resource type; this value is
                   matched both by "Resource": "*" and by the "arn:aws:s3:::*" AWS's own
                   examples use, where a bare "*" would miss the latter)
    CreateBucket   arn:aws:s3:::bucket, identity policies only (the bucket does not exist yet)
    DeleteObjects  s3:DeleteObject on each key of the body, decided by the stage per key
    CopyObject / UploadPartCopy also need s3:GetObject on the source object.

A name without an entry cannot become an operation (``UnknownOperation``), so it can never be
dispatched without an action. ``s3:max-keys`` and the handler read the same parsed value
(``parse_max_keys``): a value the handler would honour is the value the policy sees.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import unquote

from gateway.s3.errors import S3Error
from gateway.s3.tagset import (REQUEST_TAG_OPERATIONS, parse_tagging_header,
                               request_tag_conditions, tagging_directive)

__all__ = ["S3Operation", "Permission", "OperationSpec", "Scope", "Event", "OPERATIONS",
           "UnknownOperation", "make_operation", "parse_max_keys", "parse_copy_source",
           "bucket_arn", "object_arn", "MAX_KEY_BYTES", "INT_MAX", "request_tags"]

MAX_KEY_BYTES = 1024
INT_MAX = 2 ** 31 - 1
# Java's Integer.parseInt grammar, which S3 applies: an optional sign and ASCII digits only
# (no spaces, no "_" separators, no non-ASCII digits, all of which Python's int() accepts).
_INT_RE = re.compile(r"^[+-]?[0-9]+$", re.ASCII)


class Scope(Enum):
    OBJECT = "object"          # arn:aws:s3:::bucket/key, bucket policy applies
    BUCKET = "bucket"          # arn:aws:s3:::bucket, bucket policy applies
    ACCOUNT = "account"        # no bucket policy: identity policies (and roots) only
    KEYS = "keys"              # DeleteObjects: the action on each key named in the body


class Event(Enum):
    DATA = "Data"
    MANAGEMENT = "Management"


@dataclass(frozen=True, slots=True)
class OperationSpec:
    action: str
    scope: Scope
    event: Event
    copies: bool = False       # also s3:GetObject on x-amz-copy-source
    sse_write: bool = False    # carries s3:x-amz-server-side-encryption[-aws-kms-key-id]
    sse_from_upload: bool = False   # ... taken from its multipart upload (dispatcher)
    lists: str | None = None   # query parameter behind s3:max-keys
    also: tuple[str, ...] = ()  # further actions needed on the same resource


_O, _B, _A, _K = Scope.OBJECT, Scope.BUCKET, Scope.ACCOUNT, Scope.KEYS
_D, _M = Event.DATA, Event.MANAGEMENT

OPERATIONS: Mapping[str, OperationSpec] = MappingProxyType({
    "ListBuckets": OperationSpec("s3:ListAllMyBuckets", _A, _M),
    "CreateBucket": OperationSpec("s3:CreateBucket", _A, _M),
    "HeadBucket": OperationSpec("s3:ListBucket", _B, _M),
    "DeleteBucket": OperationSpec("s3:DeleteBucket", _B, _M),
    "GetBucketLocation": OperationSpec("s3:GetBucketLocation", _B, _M),
    "ListObjects": OperationSpec("s3:ListBucket", _B, _D, lists="max-keys"),
    "ListObjectsV2": OperationSpec("s3:ListBucket", _B, _D, lists="max-keys"),
    "ListMultipartUploads": OperationSpec("s3:ListBucketMultipartUploads", _B, _D,
                                          lists="max-uploads"),
    "PutObject": OperationSpec("s3:PutObject", _O, _D, sse_write=True),
    "CopyObject": OperationSpec("s3:PutObject", _O, _D, copies=True, sse_write=True),
    "CreateMultipartUpload": OperationSpec("s3:PutObject", _O, _D, sse_write=True),
    "UploadPart": OperationSpec("s3:PutObject", _O, _D, sse_from_upload=True),
    "UploadPartCopy": OperationSpec("s3:PutObject", _O, _D, copies=True, sse_from_upload=True),
    "CompleteMultipartUpload": OperationSpec("s3:PutObject", _O, _D, sse_from_upload=True),
    "AbortMultipartUpload": OperationSpec("s3:AbortMultipartUpload", _O, _D),
    "ListParts": OperationSpec("s3:ListMultipartUploadParts", _O, _D),
    "GetObject": OperationSpec("s3:GetObject", _O, _D),
    "HeadObject": OperationSpec("s3:GetObject", _O, _D),
    # Both actions on an unversioned bucket (AWS API_GetObjectAttributes.html, Permissions).
    "GetObjectAttributes": OperationSpec("s3:GetObjectAttributes", _O, _D,
                                         also=("s3:GetObject",)),
    "DeleteObject": OperationSpec("s3:DeleteObject", _O, _D),
    "DeleteObjects": OperationSpec("s3:DeleteObject", _K, _D),
    "GetObjectAcl": OperationSpec("s3:GetObjectAcl", _O, _D),
    "PutObjectAcl": OperationSpec("s3:PutObjectAcl", _O, _D),
    "GetBucketAcl": OperationSpec("s3:GetBucketAcl", _B, _M),
    "PutBucketAcl": OperationSpec("s3:PutBucketAcl", _B, _M),
    "GetBucketVersioning": OperationSpec("s3:GetBucketVersioning", _B, _M),
    "PutBucketEncryption": OperationSpec("s3:PutEncryptionConfiguration", _B, _M),
    "DeleteBucketEncryption": OperationSpec("s3:PutEncryptionConfiguration", _B, _M),
    "GetBucketEncryption": OperationSpec("s3:GetEncryptionConfiguration", _B, _M),
    "PutBucketPolicy": OperationSpec("s3:PutBucketPolicy", _B, _M),
    "GetBucketPolicy": OperationSpec("s3:GetBucketPolicy", _B, _M),
    "DeleteBucketPolicy": OperationSpec("s3:DeleteBucketPolicy", _B, _M),
    "GetBucketPolicyStatus": OperationSpec("s3:GetBucketPolicyStatus", _B, _M),
    # Tagging (gateway.s3.tagging). DeleteBucketTagging is authorized as s3:PutBucketTagging
    # [S3 API, DeleteBucketTagging: "you must have permission to perform the
    # s3:PutBucketTagging action"]; object tagging calls are data events.
    "GetObjectTagging": OperationSpec("s3:GetObjectTagging", _O, _D),
    "PutObjectTagging": OperationSpec("s3:PutObjectTagging", _O, _D),
    "DeleteObjectTagging": OperationSpec("s3:DeleteObjectTagging", _O, _D),
    "GetBucketTagging": OperationSpec("s3:GetBucketTagging", _B, _M),
    "PutBucketTagging": OperationSpec("s3:PutBucketTagging", _B, _M),
    "DeleteBucketTagging": OperationSpec("s3:PutBucketTagging", _B, _M),
})


class UnknownOperation(Exception):
    """A name with no entry in ``OPERATIONS``: a programming error, refused fail-closed."""


@dataclass(frozen=True, slots=True)
class Permission:
    """One action the request needs on one resource. ``bucket`` names the bucket whose policy
    and owner apply (None: account scope). ``request_conditions``: the operation's condition
    keys apply (False for the copy source's s3:GetObject, judged on the request alone)."""

    action: str
    resource: str
    bucket: str | None
    key: str | None = None
    request_conditions: bool = True


@dataclass(frozen=True, slots=True)
class S3Operation:
    name: str
    bucket: str | None
    key: str | None
    query: Mapping[str, str]
    spec: OperationSpec
    permissions: tuple[Permission, ...]
    conditions: Mapping[str, Any]
    copy_source: tuple[str, str] | None = None
    max_keys: int | None = None

    @property
    def action(self) -> str:
        return self.spec.action

    @property
    def event(self) -> Event:
        return self.spec.event

    @property
    def data_event(self) -> bool:
        return self.spec.event is Event.DATA


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def parse_max_keys(raw: str | None, name: str = "max-keys") -> int | None:
    """A max-keys style parameter as S3 reads it; None when absent or empty. Bad values are
    InvalidArgument, as S3 answers (the handler caps the page size, the condition key sees the
    requested number)."""
    if raw is None or raw == "":
        return None
    if not _INT_RE.match(raw) or abs(int(raw)) > INT_MAX:
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer "
                      "range", ArgumentName=name, ArgumentValue=raw[:64])
    value = int(raw)
    if value < 0:
        camel = re.sub(r"-([a-z])", lambda m: m.group(1).upper(), name)
        raise S3Error("InvalidArgument", f"Argument {camel} must be an integer between 0 and "
                      f"{INT_MAX}", ArgumentName=name, ArgumentValue=raw[:64])
    return value


def _bad_copy_source(message: str) -> S3Error:
    return S3Error("InvalidArgument", message, ArgumentName="x-amz-copy-source")


def parse_copy_source(value: str | None) -> tuple[str, str]:
    """``x-amz-copy-source``: ``[/]bucket/key[?versionId=...]``, URL-encoded."""
    usage = "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"
    if not value:
        raise _bad_copy_source(usage)
    path, _, query = value.partition("?")
    if query and not query.startswith("versionId="):
        raise _bad_copy_source("Unsupported copy source parameter.")
    if query and query not in ("versionId=null", "versionId="):
        raise _bad_copy_source("Invalid version id specified")
    try:
        decoded = unquote(path, errors="strict").lstrip("/")
    except UnicodeDecodeError as exc:
        raise _bad_copy_source(usage) from exc
    bucket, sep, key = decoded.partition("/")
    if not bucket or not sep or not key:
        raise _bad_copy_source(usage)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError")
    return bucket, key


_CONDITIONAL_WRITES = frozenset({"PutObject", "CopyObject", "CompleteMultipartUpload",
                                 "DeleteObject"})


def _conditions(name: str, spec: OperationSpec, headers: Mapping[str, str],
                query: Mapping[str, str], max_keys: int | None) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    if "x-amz-acl" in headers:
        ctx["s3:x-amz-acl"] = headers["x-amz-acl"]
    if spec.sse_write:
        ctx["s3:x-amz-server-side-encryption"] = headers.get("x-amz-server-side-encryption")
        ctx["s3:x-amz-server-side-encryption-aws-kms-key-id"] = headers.get(
            "x-amz-server-side-encryption-aws-kms-key-id")
    if spec.copies or name == "UploadPart":
        ctx["s3:x-amz-copy-source"] = headers.get("x-amz-copy-source")
    if name in _CONDITIONAL_WRITES:
        # Policies can require conditional writes / deletes (AWS: userguide/
        # conditional-writes-enforce.html, conditional-delete-enforce.html).
        ctx["s3:if-none-match"] = headers.get("If-None-Match")
        ctx["s3:if-match"] = headers.get("If-Match")
    if spec.lists is not None:
        ctx["s3:prefix"] = query.get("prefix")
        ctx["s3:delimiter"] = query.get("delimiter")
        if max_keys is not None:
            ctx["s3:max-keys"] = max_keys
    return ctx


def request_tags(name: str, headers: Mapping[str, str]) -> dict[str, str] | None:
    """The tags a PutObject / CopyObject (REPLACE) / CreateMultipartUpload sets from
    ``x-amz-tagging``; None when it sets none that way. Raises S3Error (gateway.s3.tagset)."""
    if name not in REQUEST_TAG_OPERATIONS:
        return None
    if name == "CopyObject" and tagging_directive(headers) != "REPLACE":
        return None
    return parse_tagging_header(headers.get("x-amz-tagging"))


def _permissions(spec: OperationSpec, bucket: str | None, key: str | None,
                 source: tuple[str, str] | None,
                 tags: dict[str, str] | None = None) -> tuple[Permission, ...]:
    if spec.scope is Scope.ACCOUNT:
        resource = bucket_arn(bucket) if bucket else "arn:aws:s3:::*"
        perms = [Permission(spec.action, resource, None)]
    elif spec.scope is Scope.KEYS:
        return ()          # per key, through the stage's decide() (gateway.s3.dispatch)
    elif spec.scope is Scope.BUCKET:
        assert bucket is not None
        perms = [Permission(spec.action, bucket_arn(bucket), bucket)]
    else:
        assert bucket is not None and key is not None
        perms = [Permission(action, object_arn(bucket, key), bucket, key)
                 for action in (spec.action, *spec.also)]
    if tags:
        # Setting tags with the object needs s3:PutObjectTagging too [S3 API, PutObject,
        # "Permissions": "To successfully set the tag-set with your PutObject request, you
        # must have the s3:PutObjectTagging"]; an empty x-amz-tagging sets none.
        assert bucket is not None and key is not None
        perms.append(Permission("s3:PutObjectTagging", object_arn(bucket, key), bucket, key))
    if source is not None:
        perms.append(Permission("s3:GetObject", object_arn(*source), source[0], source[1],
                                request_conditions=False))
    return tuple(perms)


def make_operation(name: str, bucket: str | None, key: str | None, query: Mapping[str, str],
                   headers: Mapping[str, str]) -> S3Operation:
    """The typed operation for a routed request. Raises ``UnknownOperation`` for a name
    outside the table, S3Error for a malformed copy source or max-keys."""
    spec = OPERATIONS.get(name)
    if spec is None:
        raise UnknownOperation(name)
    source = parse_copy_source(headers.get("x-amz-copy-source")) if spec.copies else None
    max_keys = parse_max_keys(query.get(spec.lists), spec.lists) if spec.lists else None
    tags = request_tags(name, headers)
    conditions = {**_conditions(name, spec, headers, query, max_keys),
                  **request_tag_conditions(tags)}
    return S3Operation(name=name, bucket=bucket, key=key, query=MappingProxyType(dict(query)),
                       spec=spec, permissions=_permissions(spec, bucket, key, source, tags),
                       conditions=MappingProxyType(conditions),
                       copy_source=source, max_keys=max_keys)
