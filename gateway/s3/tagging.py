"""Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, the
``x-amz-tagging`` request header, and the tag condition keys.

Where tags live::

    object   ObjectInfo.meta["tags"] = {key: value}    in the sidecar, committed with the object
             (PUT / CopyObject / CompleteMultipartUpload) or replaced in place through
             ObjectStore.update_object_meta (PutObjectTagging / DeleteObjectTagging); tags are
             not derived from the plaintext, so they are kept in clear.
    bucket   bucket config "tagging" = {"tags": [[key, value], ...]}

Parsing, limits and condition keys: ``gateway.s3.tagset``.

Condition keys [S3 UG, "Tagging and access control policies"]:

    s3:ExistingObjectTag/<key>  the stored object's tag, read by the stage before it authorizes
                                (``EXISTING_TAG_OPERATIONS``)
    s3:RequestObjectTag/<key>   a tag the request sets (header or PutObjectTagging body)
    s3:RequestObjectTagKeys     the keys the request sets (multivalued)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from aiohttp import web

from gateway.auth.payload import read_body
from gateway.s3.common import S3Call, head_call_object, storage_error, xml_response
from gateway.s3.errors import S3Error
from gateway.s3.tagset import (EXISTING_TAG_OPERATIONS, MAX_BUCKET_TAGS, TAGS_META,
                               existing_tag_conditions, parse_tagging_xml, render_tagging,
                               request_tag_conditions)
from storage import errors as se

__all__ = ["HANDLERS", "TagPrefetch", "NO_TAGS", "prefetch"]


@dataclass(frozen=True, slots=True)
class TagPrefetch:
    """What the stage read before authorizing: the condition keys, and for PutObjectTagging
    the verified body's tags (the handler stores exactly what was authorized)."""

    conditions: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    body_tags: Mapping[str, str] | None = None
    # A body that does not parse is answered after authorization (an unauthorized caller
    # learns AccessDenied, not what is wrong with its document); nothing is stored.
    body_error: S3Error | None = None


NO_TAGS = TagPrefetch()
_MAX_BODY = 64 * 1024


async def prefetch(request: web.Request, op, auth, store, bucket_exists: bool) -> TagPrefetch:
    """The tag condition keys of ``op`` (gateway.s3.dispatch calls this before the stage
    authorizes). Raises only what reading the body raises (payload errors); the body's own
    errors wait in ``body_error``."""
    if not bucket_exists or op.key is None or (op.name not in EXISTING_TAG_OPERATIONS
                                               and op.name != "PutObjectTagging"):
        return NO_TAGS
    ctx: dict[str, Any] = {}
    body_tags = body_error = None
    if op.name == "PutObjectTagging":
        body = await read_body(request.content, request.headers, auth, _MAX_BODY)
        try:
            body_tags = parse_tagging_xml(body)
        except S3Error as exc:
            body_error = exc
        ctx.update(request_tag_conditions(body_tags))
    try:
        info = await store.head_object(op.bucket, op.key)
    except se.NoSuchKey:
        info = None             # the handler answers NoSuchKey / AccessDenied
    if info is not None:
        ctx.update(existing_tag_conditions(info.meta.get(TAGS_META)))
    return TagPrefetch(MappingProxyType(ctx), body_tags, body_error)


# -- handlers ---------------------------------------------------------------------------------

async def _set_object_tags(call: S3Call, tags: dict[str, str] | None) -> None:
    try:
        await call.store.update_object_meta(call.bucket, call.key, {TAGS_META: tags})
    except se.NoSuchKey as exc:
        raise await call.authz.missing_key(call.key) from exc
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket, call.key) from exc


async def get_object_tagging(call: S3Call) -> web.StreamResponse:
    info = await head_call_object(call)
    return xml_response(render_tagging(info.meta.get(TAGS_META) or {}))


async def put_object_tagging(call: S3Call) -> web.StreamResponse:
    if call.authz.tags.body_error is not None:
        raise call.authz.tags.body_error
    tags = call.authz.tags.body_tags
    assert tags is not None, "the stage read and parsed the body"
    await _set_object_tags(call, tags or None)
    return web.Response(status=200)


async def delete_object_tagging(call: S3Call) -> web.StreamResponse:
    await _set_object_tags(call, None)
    return web.Response(status=204)


async def get_bucket_tagging(call: S3Call) -> web.StreamResponse:
    doc = await call.store.get_bucket_config(call.bucket, "tagging")
    if not doc or not doc.get("tags"):
        raise S3Error("NoSuchTagSet", BucketName=call.bucket)
    return xml_response(render_tagging({k: v for k, v in doc["tags"]}))


async def put_bucket_tagging(call: S3Call) -> web.StreamResponse:
    body = await read_body(call.request.content, call.request.headers, call.auth, _MAX_BODY)
    tags = parse_tagging_xml(body, MAX_BUCKET_TAGS, "Bucket")
    await call.store.put_bucket_config(call.bucket, "tagging",
                                       {"tags": [[k, v] for k, v in tags.items()]}
                                       if tags else None)
    return web.Response(status=204)


async def delete_bucket_tagging(call: S3Call) -> web.StreamResponse:
    await call.store.put_bucket_config(call.bucket, "tagging", None)
    return web.Response(status=204)


HANDLERS = {
    "GetObjectTagging": get_object_tagging,
    "PutObjectTagging": put_object_tagging,
    "DeleteObjectTagging": delete_object_tagging,
    "GetBucketTagging": get_bucket_tagging,
    "PutBucketTagging": put_bucket_tagging,
    "DeleteBucketTagging": delete_bucket_tagging,
}
