"""S3 authorization: (principal, action, resource ARN, condition keys) -> decision.

This is the policy half of the authorization stage; ``gateway.s3.dispatch`` is the only caller
(handlers never authorize). Which actions an operation needs is ``gateway.s3.operations``'.

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

A stored bucket policy that no longer parses fails closed (InternalError, logged): ignoring it
would drop its Deny statements. Only the owner root's policy management, which never reads the
policy, still works, so the owner can replace it.

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
from typing import Any, Mapping

from gateway.principal_info import Principal
from gateway.s3.errors import S3Error
from gateway.s3.operations import bucket_arn, object_arn
from kms.iam import AuthzRequest, Decision, PolicyError, evaluate, parse_policy
from kms.iam.arn import root_arn
from kms.iam.policy import Policy, with_principal_ids
from storage.base import ObjectStore

__all__ = ["POLICY_CONFIG", "bucket_arn", "object_arn", "bucket_policy",
           "parse_bucket_policy", "base_context", "decide", "owner_always", "denied",
           "decision_note"]

log = logging.getLogger("coffer.gateway.authz")

POLICY_CONFIG = "policy"        # bucket config kind: {"v": 1|2, "document", "principal_ids"?}
BUCKET_POLICY_NAME = "bucket policy"

# The bucket owner's root may always manage the bucket policy (no lock-out).
_OWNER_ALWAYS = {"s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"}
_UNPARSABLE = object()


# -- bucket policies ------------------------------------------------------------------------

_CACHE: OrderedDict[str, Policy | None] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def parse_bucket_policy(text: str) -> Policy:
    """Parse a bucket policy; raises ``PolicyError`` (the caller answers MalformedPolicy)."""
    return parse_policy(text, kind="resource", name=BUCKET_POLICY_NAME)


def _cached_policy(text: str) -> Policy:
    """Parsed policies by text (a text always parses the same way, so the cache carries no
    one's rights and never goes stale)."""
    with _CACHE_LOCK:
        if text in _CACHE:
            _CACHE.move_to_end(text)
            policy = _CACHE[text]
        else:
            policy = None
    if policy is None:
        try:
            policy = parse_bucket_policy(text)
        except PolicyError:
            policy = _UNPARSABLE
        with _CACHE_LOCK:
            _CACHE[text] = policy
            while len(_CACHE) > 512:
                _CACHE.popitem(last=False)
    if policy is _UNPARSABLE:
        log.error("a stored bucket policy no longer parses: refusing the request")
        raise S3Error("InternalError")
    return policy


async def bucket_policy(store: ObjectStore, memo: dict[str, Any], bucket: str) -> Policy | None:
    """The bucket's policy with the user ids saved beside it (v2; v1: none), or None;
    ``memo`` is the request context's per-request cache. An unknown record version fails
    closed (InternalError), like a document that no longer parses."""
    if bucket not in memo:
        doc = await store.get_bucket_config(bucket, POLICY_CONFIG)
        if not doc or not doc.get("document"):
            memo[bucket] = None
        else:
            memo[bucket] = with_principal_ids(_cached_policy(doc["document"]),
                                              _saved_ids(doc))
    return memo[bucket]


def _saved_ids(doc: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    version = doc.get("v", 1)
    if version == 1:
        return None
    ids = doc.get("principal_ids")
    if version == 2 and isinstance(ids, list) and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in ids):
        return tuple((a, u) for a, u in ids)
    log.error("a stored bucket policy record (v=%r) is not understood: refusing the request",
              version)
    raise S3Error("InternalError")


# -- the decision ---------------------------------------------------------------------------

_AUTH_TYPES = {"sigv4-header": "REST-HEADER", "sigv2-header": "REST-HEADER",
               "sigv4-query": "REST-QUERY-STRING", "sigv2-query": "REST-QUERY-STRING"}


def base_context(principal: Principal, default_region: str) -> dict[str, Any]:
    """The condition keys every S3 request carries [S3 UG, "Amazon S3 condition key
    examples"; IAM UG, "AWS global condition context keys"]."""
    method = principal.auth_method
    return {
        "aws:SourceIp": principal.source_ip or None,
        "aws:SecureTransport": principal.secure_transport,
        "aws:RequestedRegion": principal.signed_region or default_region,
        "s3:authType": _AUTH_TYPES.get(method),
        "s3:signatureversion": "AWS4-HMAC-SHA256" if method.startswith("sigv4")
        else ("AWS" if method.startswith("sigv2") else None),
    }


def owner_always(principal: Principal, action: str, owner: str | None) -> bool:
    """AWS's no-lock-out rule: the owner account's root may always manage the bucket policy
    (an explicit Deny in the bucket policy does not apply to it)."""
    return (action in _OWNER_ALWAYS and owner is not None and not principal.anonymous
            and principal.account_id == owner and principal.arn == root_arn(owner))


def decide(principal: Principal, action: str, resource: str, *, owner: str | None,
           policy: Policy | None, context: Mapping[str, Any]
           ) -> tuple[AuthzRequest, Decision]:
    """Evaluate ``action`` on ``resource`` of account ``owner`` (None: the caller's own)."""
    if principal.anonymous:
        request = AuthzRequest(principal_arn="", action=action, resource=resource,
                               context=dict(context))
        return request, evaluate(request, [], policy, resource_account=owner or "")
    request = AuthzRequest(principal_arn=principal.arn, action=action, resource=resource,
                           principal_account=principal.account_id, context=dict(context),
                           user_name=principal.user_name, user_id=principal.user_id)
    if owner_always(principal, action, owner):
        return request, Decision(True, "bucket-owner")
    decision = evaluate(request, list(principal.identity_policies), policy,
                        resource_account=owner or principal.account_id)
    return request, decision


def decision_note(request: AuthzRequest, decision: Decision) -> dict[str, Any]:
    """A decision as the audit record carries it (gateway.audit_trail)."""
    note: dict[str, Any] = {"action": request.action, "resource": request.resource[:2048],
                            "allowed": decision.allowed, "reason": decision.reason}
    if decision.statement is not None:
        note["policy"], note["statementSid"] = decision.statement
    return note


def denied(request: AuthzRequest, decision: Decision) -> S3Error:
    log.info("s3 access denied: %s %s %s -> %s", request.principal_arn or "anonymous",
             request.action, request.resource[:256], decision.explain())
    return S3Error("AccessDenied", decision.aws_message(request))
