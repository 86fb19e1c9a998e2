"""S3 authorization: every operation -> IAM action + resource ARN + condition keys -> decision.

One engine (``kms.iam.evaluate``) decides, as AWS does (DESIGN.md "Policies"):

- the caller's identity policies (none for account roots and anonymous callers) and the
  bucket policy (bucket config ``policy``) are evaluated together; an explicit Deny in either
  wins;
- same account: an Allow from either suffices; the account root is implicitly allowed on its
  own account's buckets (unless a Deny applies);
- cross account: the bucket policy must allow the caller (or its account) AND, for IAM users,
  the caller's identity policy must allow;
- anonymous callers (no signature): only a bucket policy naming ``"*"`` lets them in.

AWS's exception for the bucket owner: the owner account's root can always Get/Put/Delete the
bucket policy, so a policy can never lock the owner out.

Operation -> action (``ACTIONS``); resources are ``arn:aws:s3:::bucket`` for bucket operations,
``arn:aws:s3:::bucket/key`` for object operations, ``arn:aws:s3:::*`` for ListBuckets.
DeleteObjects is checked per key (``s3:DeleteObject``), CopyObject / UploadPartCopy also need
``s3:GetObject`` on the source, and a missing key is reported as NoSuchKey only to callers
allowed ``s3:ListBucket`` (AccessDenied otherwise), as S3 does.

Condition keys: aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType, aws:username,
aws:userid, aws:CurrentTime, aws:EpochTime (the evaluator), aws:SourceIp, aws:SecureTransport,
aws:RequestedRegion, s3:x-amz-server-side-encryption,
s3:x-amz-server-side-encryption-aws-kms-key-id (the request's headers; UploadPart and
CompleteMultipartUpload take them from the upload), s3:x-amz-copy-source, s3:x-amz-acl,
s3:prefix, s3:delimiter, s3:max-keys (ListBucket), s3:authType, s3:signatureversion.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from gateway import principal_info
from gateway.s3.errors import S3Error
from kms.iam import AuthzRequest, Decision, PolicyError, evaluate, parse_policy
from kms.iam.arn import root_arn
from kms.iam.policy import Policy
from storage.base import BucketInfo

if TYPE_CHECKING:
    from gateway.s3.common import S3Call

__all__ = ["ACTIONS", "POLICY_CONFIG", "bucket_arn", "object_arn", "bucket_policy",
           "parse_bucket_policy", "decide", "authorize", "authorize_operation",
           "authorize_account", "allowed", "missing_key_error"]

log = logging.getLogger("coffer.gateway.authz")

POLICY_CONFIG = "policy"        # bucket config kind: {"v": 1, "document": "<policy JSON>"}
BUCKET_POLICY_NAME = "bucket policy"

ACTIONS: dict[str, str] = {
    "ListBuckets": "s3:ListAllMyBuckets",
    "CreateBucket": "s3:CreateBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetBucketLocation": "s3:GetBucketLocation",
    "DeleteBucket": "s3:DeleteBucket",
    "PutObject": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "DeleteBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketPolicy": "s3:PutBucketPolicy",
    "GetBucketPolicy": "s3:GetBucketPolicy",
    "DeleteBucketPolicy": "s3:DeleteBucketPolicy",
    "GetBucketPolicyStatus": "s3:GetBucketPolicyStatus",
    "GetBucketAcl": "s3:GetBucketAcl",
    "PutBucketAcl": "s3:PutBucketAcl",
    "GetObjectAcl": "s3:GetObjectAcl",
    "PutObjectAcl": "s3:PutObjectAcl",
    "GetBucketVersioning": "s3:GetBucketVersioning",
}
# Operations whose resource is an object (the others name the bucket).
_OBJECT_OPS = {"PutObject", "CopyObject", "UploadPart", "CreateMultipartUpload",
               "CompleteMultipartUpload", "GetObject", "HeadObject", "DeleteObject",
               "AbortMultipartUpload", "ListParts", "GetObjectAcl", "PutObjectAcl"}
# The bucket owner's root may always manage the bucket policy (no lock-out).
_OWNER_ALWAYS = {"s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"}
_LIST_OPS = {"ListObjects", "ListObjectsV2", "ListMultipartUploads"}
_SSE_WRITES = {"PutObject", "CopyObject", "CreateMultipartUpload"}


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


# -- bucket policies ------------------------------------------------------------------------

_CACHE: OrderedDict[str, Policy | None] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def parse_bucket_policy(text: str) -> Policy:
    """Parse a bucket policy; raises ``PolicyError`` (the caller answers MalformedPolicy)."""
    return parse_policy(text, kind="resource", name=BUCKET_POLICY_NAME)


def _cached_policy(text: str) -> Policy | None:
    with _CACHE_LOCK:
        if text in _CACHE:
            _CACHE.move_to_end(text)
            return _CACHE[text]
    try:
        policy: Policy | None = parse_bucket_policy(text)
    except PolicyError:
        log.error("a stored bucket policy no longer parses; ignored")
        policy = None
    with _CACHE_LOCK:
        _CACHE[text] = policy
        while len(_CACHE) > 512:
            _CACHE.popitem(last=False)
    return policy


async def bucket_policy(call: "S3Call", bucket: str) -> Policy | None:
    """The bucket's policy (parsed, cached per request), or None."""
    memo = call.request.setdefault("coffer_bucket_policies", {})
    if bucket not in memo:
        doc = await call.store.get_bucket_config(bucket, POLICY_CONFIG)
        memo[bucket] = _cached_policy(doc["document"]) if doc and doc.get("document") else None
    return memo[bucket]


# -- the request ----------------------------------------------------------------------------

def _identity_policies(call: "S3Call") -> list[Policy]:
    return list(principal_info.identity_policies(call.request, call.auth.credential))


def _user_id(call: "S3Call") -> str | None:
    return principal_info.user_id(call.request, call.auth.credential)


def _base_context(call: "S3Call") -> dict[str, Any]:
    req = call.request
    headers = req.headers
    method = call.auth.method
    ctx: dict[str, Any] = {
        "aws:SourceIp": req.remote or None,
        "aws:SecureTransport": bool(req.secure),
        "aws:RequestedRegion": call.auth.region or call.config.region,
        "s3:authType": {"sigv4-header": "REST-HEADER", "sigv2-header": "REST-HEADER",
                        "sigv4-query": "REST-QUERY-STRING",
                        "sigv2-query": "REST-QUERY-STRING"}.get(method),
        "s3:signatureversion": "AWS4-HMAC-SHA256" if method.startswith("sigv4")
        else ("AWS" if method.startswith("sigv2") else None),
    }
    if "x-amz-acl" in headers:
        ctx["s3:x-amz-acl"] = headers["x-amz-acl"]
    return ctx


async def _operation_context(call: "S3Call") -> dict[str, Any]:
    op = call.op.operation
    headers = call.request.headers
    q = call.op.query
    ctx: dict[str, Any] = {}
    if op in _SSE_WRITES:
        ctx["s3:x-amz-server-side-encryption"] = headers.get("x-amz-server-side-encryption")
        ctx["s3:x-amz-server-side-encryption-aws-kms-key-id"] = headers.get(
            "x-amz-server-side-encryption-aws-kms-key-id")
        if op == "CopyObject":
            ctx["s3:x-amz-copy-source"] = headers.get("x-amz-copy-source")
    elif op in ("UploadPart", "CompleteMultipartUpload") and q.get("uploadId"):
        # The parts of an upload are written with the encryption chosen when it was created.
        try:
            upload = await call.store.get_multipart_upload(call.bucket, q["uploadId"])
        except Exception:  # noqa: BLE001 - unknown upload: the handler answers NoSuchUpload
            upload = None
        record = (upload.meta.get("sse") or {}) if upload is not None else {}
        if record.get("mode") in ("aws:kms", "AES256"):
            ctx["s3:x-amz-server-side-encryption"] = record["mode"]
            if record["mode"] == "aws:kms":
                ctx["s3:x-amz-server-side-encryption-aws-kms-key-id"] = record.get("key_arn")
        if op == "UploadPart":
            ctx["s3:x-amz-copy-source"] = headers.get("x-amz-copy-source")
    if op in _LIST_OPS:
        ctx["s3:prefix"] = q.get("prefix")
        ctx["s3:delimiter"] = q.get("delimiter")
        raw = q.get("max-uploads" if op == "ListMultipartUploads" else "max-keys")
        if raw is not None and raw.strip().isdigit():
            ctx["s3:max-keys"] = int(raw)
    return ctx


def decide(call: "S3Call", action: str, resource: str, *, owner: str | None,
           policy: Policy | None, context: dict[str, Any] | None = None
           ) -> tuple[AuthzRequest, Decision]:
    """Evaluate ``action`` on ``resource`` (of account ``owner``; None: the caller's own)."""
    cred = call.auth.credential
    ctx = _base_context(call)
    ctx.update(context or {})
    if cred is None:
        request = AuthzRequest(principal_arn="", action=action, resource=resource, context=ctx)
        return request, evaluate(request, [], policy, resource_account=owner or "")
    request = AuthzRequest(principal_arn=cred.principal_arn, action=action, resource=resource,
                           principal_account=cred.account_id, context=ctx,
                           user_name=cred.user_name, user_id=_user_id(call))
    resource_account = owner or cred.account_id
    if (action in _OWNER_ALWAYS and cred.account_id == resource_account
            and cred.principal_arn == root_arn(resource_account)):
        return request, Decision(True, "bucket-owner")
    decision = evaluate(request, _identity_policies(call), policy,
                        resource_account=resource_account)
    return request, decision


def _note(call: "S3Call", decision: Decision) -> None:
    """Put the deciding statement into the request's audit record (gateway.audit_trail)."""
    note: dict[str, Any] = {"allowed": decision.allowed, "reason": decision.reason}
    if decision.statement is not None:
        note["policy"], note["statementSid"] = decision.statement
    call.request.setdefault("coffer_audit", {})["decision"] = note


def _deny(request: AuthzRequest, decision: Decision) -> S3Error:
    log.info("s3 access denied: %s %s %s -> %s", request.principal_arn or "anonymous",
             request.action, request.resource, decision.explain())
    return S3Error("AccessDenied", decision.aws_message(request))


async def allowed(call: "S3Call", action: str, info: BucketInfo, key: str | None = None,
                  context: dict[str, Any] | None = None) -> bool:
    resource = object_arn(info.name, key) if key is not None else bucket_arn(info.name)
    policy = await bucket_policy(call, info.name)
    return decide(call, action, resource, owner=info.owner, policy=policy,
                  context=context)[1].allowed


async def authorize(call: "S3Call", action: str, info: BucketInfo, key: str | None = None,
                    context: dict[str, Any] | None = None) -> None:
    """Raise AccessDenied unless ``action`` on the bucket (or its ``key``) is allowed."""
    resource = object_arn(info.name, key) if key is not None else bucket_arn(info.name)
    policy = await bucket_policy(call, info.name)
    request, decision = decide(call, action, resource, owner=info.owner, policy=policy,
                               context=context)
    _note(call, decision)
    if not decision.allowed:
        raise _deny(request, decision)


async def authorize_operation(call: "S3Call", info: BucketInfo) -> None:
    """The check every bucket-scoped handler makes (through ``require_bucket``)."""
    op = call.op.operation
    if op == "DeleteObjects":
        return                      # per key, in the handler
    action = ACTIONS.get(op)
    if action is None:
        raise S3Error("AccessDenied")
    key = call.op.key if op in _OBJECT_OPS else None
    await authorize(call, action, info, key, await _operation_context(call))


def authorize_account(call: "S3Call", action: str, resource: str) -> None:
    """Operations on no bucket (ListBuckets, CreateBucket): identity policies only."""
    if call.auth.credential is None:
        raise S3Error("AccessDenied")
    request, decision = decide(call, action, resource, owner=None, policy=None)
    _note(call, decision)
    if not decision.allowed:
        raise _deny(request, decision)


async def missing_key_error(call: "S3Call", info: BucketInfo, key: str) -> S3Error:
    """NoSuchKey for callers allowed s3:ListBucket on the bucket, AccessDenied otherwise."""
    if await allowed(call, "s3:ListBucket", info):
        return S3Error("NoSuchKey", Key=key)
    return S3Error("AccessDenied")
