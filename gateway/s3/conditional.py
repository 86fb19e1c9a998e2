"""Conditional writes and deletes: ``If-None-Match: *`` / ``If-Match: <etag>`` on PutObject,
CopyObject (destination) and CompleteMultipartUpload, ``If-Match`` on DeleteObject.

AWS: userguide/conditional-writes.html, userguide/conditional-deletes.html, and the recorded
answers in shared/reference/s3-surface.md section 9:

    If-None-Match: *, key exists                 412 PreconditionFailed  Condition=If-None-Match
    If-None-Match: <anything but *>              501 NotImplemented      Header=If-None-Match
    If-Match: <etag>, other ETag (quotes optional) 412                   Condition=If-Match
    If-Match, key absent                         404 NoSuchKey
    If-Match: * (writes; deletes accept it)      501 NotImplemented      Header=If-Match
    both headers                                 501 NotImplemented      Header=If-Match,If-None-Match
    the key changed while the request was in flight          409 ConditionalRequestConflict

The handlers check early (before reading a body or calling KMS), but the decision that counts is
made by storage at its commit point, under the key's lock (``storage.base.WriteCondition``): two
racing ``If-None-Match: *`` PUTs never both succeed. "In flight" starts at the early check for a
PUT or copy and at CreateMultipartUpload for a multipart upload, whose record keeps the key's
state token from then (``KEY_STATE``).
"""
from __future__ import annotations

from typing import Any, Mapping

from gateway.s3.common import S3Call, parse_etag, storage_error
from gateway.s3.errors import S3Error
from storage import errors as se
from storage.base import WriteCondition, state_token

__all__ = ["KEY_STATE", "check_write_preconditions", "complete_condition", "delete_condition",
           "upload_key_state"]

# Upload-record field: the key's state token at CreateMultipartUpload ("" = absent).
KEY_STATE = "key_state"
# Directory-bucket-only DeleteObject conditions (AWS API_DeleteObject.html); general purpose
# buckets answer them 501.
_DIRECTORY_ONLY = ("x-amz-if-match-last-modified-time", "x-amz-if-match-size")


def _not_implemented(header: str, message: str | None = None, extra: str | None = None) -> S3Error:
    return S3Error("NotImplemented", message, Header=header, additionalMessage=extra)


def _parse_write(headers: Mapping[str, str]) -> tuple[bool, str | None] | None:
    """(If-None-Match: *, If-Match ETag) of a write, or None when it is unconditional."""
    if_none = headers.get("If-None-Match")
    if_match = headers.get("If-Match")
    if if_none is None and if_match is None:
        return None
    if if_none is not None and if_match is not None:
        raise _not_implemented("If-Match,If-None-Match",
                               "Multiple conditional request headers present in the request")
    if if_none is not None:
        if if_none.strip() != "*":
            raise _not_implemented("If-None-Match", extra="We don't accept the provided value "
                                   "of If-None-Match header for this API")
        return True, None
    etag = parse_etag(if_match or "")
    if etag == "*" or not etag:
        raise _not_implemented("If-Match", extra="We don't accept the provided value of "
                               "If-Match header for this API")
    return False, etag


async def _current(call: S3Call):
    try:
        return await call.store.head_object(call.bucket, call.key)
    except se.NoSuchKey:
        return None
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc


async def check_write_preconditions(call: S3Call) -> WriteCondition | None:
    """The PUT / copy destination condition, checked now (412 / 404 before any body is read)
    and handed to storage to hold at the commit point."""
    parsed = _parse_write(call.request.headers)
    if parsed is None:
        return None
    if_none_match, if_match = parsed
    current = await _current(call)
    cond = WriteCondition(if_none_match=if_none_match, if_match=if_match, expect_state=True,
                          state=state_token(current))
    _check_now(cond, current, call.key)
    return cond


def _check_now(cond: WriteCondition, current, key: str) -> None:
    if cond.if_none_match and current is not None:
        raise S3Error("PreconditionFailed", Condition="If-None-Match")
    if cond.if_match is not None:
        if current is None:
            raise S3Error("NoSuchKey", Key=key)
        if cond.if_match != "*" and cond.if_match != current.etag:
            raise S3Error("PreconditionFailed", Condition="If-Match")


async def upload_key_state(call: S3Call) -> str:
    """The key's state token for a new multipart upload's record ("" = absent)."""
    return state_token(await _current(call)) or ""


def complete_condition(call: S3Call, upload_meta: Mapping[str, Any]) -> WriteCondition | None:
    """CompleteMultipartUpload's condition: judged at completion, but a key written or deleted
    since CreateMultipartUpload is a 409 even when the new state would satisfy it."""
    parsed = _parse_write(call.request.headers)
    if parsed is None:
        return None
    if_none_match, if_match = parsed
    seen = upload_meta.get(KEY_STATE)
    # Uploads created before key states were recorded are judged on the current state only.
    return WriteCondition(if_none_match=if_none_match, if_match=if_match,
                          expect_state=seen is not None, state=seen or None)


async def delete_condition(call: S3Call) -> WriteCondition | None:
    """DeleteObject's If-Match (``*``: only if the key exists). With an ETag AWS also needs
    s3:GetObject on the key (userguide/conditional-deletes.html)."""
    headers = call.request.headers
    for name in _DIRECTORY_ONLY:
        if name in headers:
            raise _not_implemented(name)
    raw = headers.get("If-Match")
    if raw is None:
        return None
    etag = parse_etag(raw)
    if not etag:
        raise _not_implemented("If-Match", extra="We don't accept the provided value of "
                               "If-Match header for this API")
    if etag != "*" and not await call.authz.allowed("s3:GetObject", call.key):
        raise S3Error("AccessDenied")
    return WriteCondition(if_match=etag)
