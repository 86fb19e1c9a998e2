"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
and the fixed answers for ACL and versioning that clients probe for."""
from __future__ import annotations

import base64
import re

from aiohttp import web

from gateway.auth.payload import read_body
from gateway.s3.common import S3Call, head_call_object, storage_error, xml_response
from gateway.regions import region_allowed
from gateway.s3.errors import S3Error
from gateway.s3.xml import iso8601, parse, render, text_of
from storage import errors as se

__all__ = ["HANDLERS", "parse_location_constraint"]

_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_CANNED_ACLS = {"private", "public-read", "public-read-write", "authenticated-read",
                "bucket-owner-read", "bucket-owner-full-control", "aws-exec-read",
                "log-delivery-write"}


def parse_location_constraint(body: bytes) -> str | None:
    """A CreateBucket body (possibly empty) -> its LocationConstraint, or None. Raises S3Error
    only (MalformedXML, InvalidLocationConstraint)."""
    if not body.strip():
        return None
    doc = parse(body)
    if doc.tag != "CreateBucketConfiguration":
        raise S3Error("MalformedXML")
    constraint = text_of(doc, "LocationConstraint")
    # AWS refuses an explicit us-east-1 constraint; the default region is implicit.
    if constraint is not None and (constraint == "us-east-1"
                                   or not _REGION_RE.match(constraint)):
        raise S3Error("InvalidLocationConstraint", LocationConstraint=constraint[:64])
    return constraint


def _owner(call: S3Call) -> dict[str, str]:
    return {"ID": call.account, "DisplayName": call.account}


# ListBuckets pagination [S3 API, ListBuckets]: max-buckets is 1-10000; the continuation
# token is opaque to clients (here: the last name returned, base64url-encoded).
_MAX_BUCKETS = 10_000


def _list_buckets_page(q) -> tuple[int | None, str, str, str | None]:
    raw = q.get("max-buckets")
    limit = None
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= _MAX_BUCKETS:
            raise S3Error("InvalidArgument", "Argument max-buckets must be an integer between "
                          f"1 and {_MAX_BUCKETS}", ArgumentName="max-buckets",
                          ArgumentValue=raw[:64])
        limit = int(raw)
    after = ""
    token = q.get("continuation-token")
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode("ascii") + b"==").decode("utf-8")
        except (ValueError, UnicodeError):
            after = ""
        if not after:
            raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                          ArgumentName="continuation-token", ArgumentValue=token[:64])
    return limit, after, q.get("prefix", ""), q.get("bucket-region") or None


async def list_buckets(call: S3Call) -> web.StreamResponse:
    limit, after, prefix, region = _list_buckets_page(call.op.query)
    buckets = await call.store.list_buckets()
    owned = [b for b in buckets if b.owner == call.account and b.name > after
             and b.name.startswith(prefix) and (region is None or b.region == region)]
    page = owned if limit is None else owned[:limit]
    token = None
    if limit is not None and len(owned) > limit:
        token = base64.urlsafe_b64encode(page[-1].name.encode()).decode().rstrip("=")
    body = render("ListAllMyBucketsResult", {
        # <Buckets/> even when empty: strict unmarshallers need the element.
        "Buckets": {"Bucket": [{"Name": b.name, "CreationDate": iso8601(b.created),
                                "BucketRegion": b.region} for b in page]} if page else "",
        "Owner": _owner(call),
        "ContinuationToken": token,
        "Prefix": prefix if "prefix" in call.op.query else None,
    })
    return xml_response(body)


async def create_bucket(call: S3Call) -> web.StreamResponse:
    acl = call.request.headers.get("x-amz-acl")
    if acl is not None and acl not in _CANNED_ACLS:
        raise S3Error("InvalidArgument", "Invalid canned ACL", ArgumentName="x-amz-acl")
    region = call.region or call.config.region       # the signed region (gateway.app)
    body = await read_body(call.request.content, call.request.headers, call.auth, 64 * 1024)
    constraint = parse_location_constraint(body)
    if constraint is not None:
        if not region_allowed(call.config, constraint):
            raise S3Error("InvalidLocationConstraint", LocationConstraint=constraint)
        # A regional endpoint creates buckets only in its own region (us-east-1 takes any).
        if region not in (constraint, "us-east-1"):
            raise S3Error("IllegalLocationConstraintException",
                          f"The {constraint} location constraint is incompatible for the "
                          "region specific endpoint this request was sent to.")
        region = constraint
    try:
        await call.store.create_bucket(call.bucket, region=region, owner=call.account)
    except se.BucketExists as exc:
        if exc.owner == call.account:
            existing = call.bucket_info
            if existing is not None and existing.region == "us-east-1" == region:
                # [S3 API, CreateBucket, BucketAlreadyOwnedByYou]: "For legacy compatibility,
                # if you re-create an existing bucket that you already own in the North
                # Virginia Region, Amazon S3 returns 200 OK".
                return web.Response(status=200, headers={"Location": f"/{call.bucket}"})
            raise S3Error("BucketAlreadyOwnedByYou", BucketName=call.bucket) from exc
        raise S3Error("BucketAlreadyExists", BucketName=call.bucket) from exc
    return web.Response(status=200, headers={"Location": f"/{call.bucket}"})


async def head_bucket(call: S3Call) -> web.StreamResponse:
    return web.Response(status=200, headers={"x-amz-bucket-region": call.info.region})


async def delete_bucket(call: S3Call) -> web.StreamResponse:
    try:
        await call.store.delete_bucket(call.bucket)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket) from exc
    return web.Response(status=204)


async def get_bucket_location(call: S3Call) -> web.StreamResponse:
    info = call.info
    # us-east-1 is reported as an empty LocationConstraint, as AWS does.
    region = "" if info.region == "us-east-1" else info.region
    return xml_response(render("LocationConstraint", {"#text": region}))


async def get_acl(call: S3Call) -> web.StreamResponse:
    """The owner has FULL_CONTROL; Coffer has no ACLs beyond that (policies come later)."""
    info = call.info
    if call.op.key is not None:
        await head_call_object(call)
    owner = {"ID": info.owner, "DisplayName": info.owner}
    body = render("AccessControlPolicy", {
        "Owner": owner,
        "AccessControlList": {"Grant": [{
            "Grantee": {"@xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
                        "@xsi:type": "CanonicalUser", **owner},
            "Permission": "FULL_CONTROL"}]},
    })
    return xml_response(body)


async def put_acl(call: S3Call) -> web.StreamResponse:
    acl = call.request.headers.get("x-amz-acl", "private")
    if acl != "private":
        raise S3Error("NotImplemented", "Only the private canned ACL is supported")
    await read_body(call.request.content, call.request.headers, call.auth, 64 * 1024)
    return web.Response(status=200)


async def get_bucket_versioning(call: S3Call) -> web.StreamResponse:
    return xml_response(render("VersioningConfiguration", {}))


HANDLERS = {
    "ListBuckets": list_buckets,
    "CreateBucket": create_bucket,
    "HeadBucket": head_bucket,
    "DeleteBucket": delete_bucket,
    "GetBucketLocation": get_bucket_location,
    "GetBucketAcl": get_acl,
    "GetObjectAcl": get_acl,
    "PutBucketAcl": put_acl,
    "PutObjectAcl": put_acl,
    "GetBucketVersioning": get_bucket_versioning,
}
