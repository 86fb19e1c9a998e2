"""Bucket policies: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus.

Stored as the bucket config document ``policy``: ``{"v": 1, "document": "<JSON as sent>"}``,
or, when the users it names were resolved on save, ``{"v": 2, "document": ...,
"principal_ids": [["<user ARN>", "<unique id>"], ...]}`` (a re-created user is not matched,
``kms.iam.policy``); GetBucketPolicy returns the document as it was put. A document is checked with the shared
policy parser (a resource policy: every statement names a Principal) plus S3's own rules: the
actions are S3 actions and the resources lie in this bucket; anything else is MalformedPolicy
(400) with AWS's message. Evaluation is ``gateway.s3.authz``'s.

GetBucketPolicyStatus: ``IsPublic`` is true when an Allow statement opens the bucket to
everyone (``Principal: "*"`` / ``{"AWS": "*"}``, or a NotPrincipal) without conditions.
"""
from __future__ import annotations

from aiohttp import web

from gateway.auth.payload import read_body
from gateway.s3 import authz
from gateway.s3.common import S3Call, storage_error, xml_response
from gateway.s3.errors import S3Error
from gateway.s3.xml import render
from gateway import principal_info
from kms.iam import PolicyError, parse_policy
from kms.iam.conditions import wildcard_match
from kms.iam.policy import Policy, PrincipalExists, resolve_principal_ids
from storage import errors as se

__all__ = ["HANDLERS", "validate_bucket_policy", "is_public"]

MAX_POLICY_BYTES = 20 * 1024        # S3: "bucket policies are limited to 20 KB"


def _bucket_part(resource: str) -> str | None:
    prefix = "arn:aws:s3:::"
    if not resource.startswith(prefix):
        return None
    return resource[len(prefix):].split("/", 1)[0]


def validate_bucket_policy(text: str, bucket: str,
                           principal_exists: PrincipalExists | None = None) -> Policy:
    """Parse ``text`` as a policy for ``bucket``; raises MalformedPolicy as S3 words it.
    The save-time principal rules apply (``kms.iam.policy``), users looked up with
    ``principal_exists``."""
    try:
        policy = parse_policy(text, kind="resource", name=authz.BUCKET_POLICY_NAME,
                              saving=True, principal_exists=principal_exists)
    except PolicyError as exc:
        raise S3Error("MalformedPolicy", exc.message) from None
    for st in policy.statements:
        for action in st.actions:
            if action != "*" and not action.lower().startswith("s3:"):
                raise S3Error("MalformedPolicy", "Policy has invalid action")
        for resource in st.resources:
            if resource == "*":
                continue
            part = _bucket_part(resource)
            if part is None or not wildcard_match(part, bucket):
                raise S3Error("MalformedPolicy", "Policy has invalid resource")
    return policy


def is_public(policy: Policy) -> bool:
    for st in policy.statements:
        if st.effect != "Allow" or st.conditions or st.principal is None:
            continue
        if st.not_principal or st.principal.wildcard or "*" in st.principal.aws:
            return True
    return False


async def put_bucket_policy(call: S3Call) -> web.StreamResponse:
    body = await read_body(call.request.content, call.request.headers, call.auth,
                           MAX_POLICY_BYTES + 1)
    if len(body) > MAX_POLICY_BYTES:
        raise S3Error("MalformedPolicy", "Policies must be less than 20 KB")
    if not body.strip():
        raise S3Error("MalformedPolicy", "Policies must be valid JSON and the first byte must "
                      "be '{'")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("MalformedPolicy", "Policies must be valid JSON and the first byte must "
                      "be '{'") from None
    policy = validate_bucket_policy(text, call.bucket,
                                    principal_info.principal_exists(call.request))
    record: dict = {"v": 1, "document": text}
    lookup = principal_info.principal_id(call.request)
    if lookup is not None:
        # Each user the policy names, as its unique id now (kms.iam.policy, "Principals
        # saved as unique ids"): a user re-created under the name later is not matched.
        record = {"v": 2, "document": text,
                  "principal_ids": [list(p) for p in resolve_principal_ids(policy, lookup)]}
    try:
        await call.store.put_bucket_config(call.bucket, authz.POLICY_CONFIG, record)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket) from exc
    return web.Response(status=204)


async def _stored(call: S3Call) -> str:
    try:
        doc = await call.store.get_bucket_config(call.bucket, authz.POLICY_CONFIG)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket) from exc
    if not doc or not doc.get("document"):
        raise S3Error("NoSuchBucketPolicy", BucketName=call.bucket)
    return doc["document"]


async def get_bucket_policy(call: S3Call) -> web.StreamResponse:
    text = await _stored(call)
    return web.Response(body=text.encode(), status=200, content_type="application/json")


async def delete_bucket_policy(call: S3Call) -> web.StreamResponse:
    try:
        await call.store.put_bucket_config(call.bucket, authz.POLICY_CONFIG, None)
    except se.StorageError as exc:
        raise storage_error(exc, call.bucket) from exc
    return web.Response(status=204)


async def get_bucket_policy_status(call: S3Call) -> web.StreamResponse:
    text = await _stored(call)
    try:
        public = is_public(authz.parse_bucket_policy(text))
    except PolicyError:
        public = False
    return xml_response(render("PolicyStatus", {"IsPublic": public}))


HANDLERS = {
    "PutBucketPolicy": put_bucket_policy,
    "GetBucketPolicy": get_bucket_policy,
    "DeleteBucketPolicy": delete_bucket_policy,
    "GetBucketPolicyStatus": get_bucket_policy_status,
}
