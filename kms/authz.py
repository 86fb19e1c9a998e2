"""Authorization of KMS calls, as AWS does it (DESIGN.md "Policies"; kms-contract.md).

``authorize(caller, action, key, context)`` evaluates ``kms:<action>`` on ``key`` with
``kms.iam.evaluate``: the key policy is the *required* resource policy (only the key policy can
open a key; the account root has no implicit access, it gets in through the default key
policy's ``arn:aws:iam::<acct>:root`` statement, which also delegates to the account's IAM
policies), the caller's identity policies come with the ``Caller``. Same account: the key policy
names the caller (or ``*``), or delegates to the account and an identity policy allows.
Cross account: the key policy must allow the other account (or the caller) AND that account's
identity policy must allow. An explicit Deny anywhere wins. Grants (``kms.grants``) are a further
source of Allow consulted by the KMS when the policies give none; they never override a Deny.

AWS-managed keys (``alias/aws/<service>``) carry the policy AWS generates for them
(``aws_managed_key_policy``): the crypto operations only through the service
(``kms:ViaService``) for callers of the same account (``kms:CallerAccount``).

Request condition keys supplied here [DG/conditions-kms, IAM UG global condition keys]:
aws:PrincipalArn, aws:PrincipalAccount, aws:username, aws:userid, aws:CurrentTime (from the
evaluator), aws:SourceIp, aws:SecureTransport, aws:RequestedRegion, kms:CallerAccount,
kms:ViaService, kms:KeySpec, kms:KeyUsage, kms:KeyOrigin, kms:KeyManager,
kms:EncryptionContext:<k>, kms:EncryptionContextKeys, kms:EncryptionAlgorithm and whatever the
operation adds (CreateGrant: kms:GrantOperations, kms:GranteePrincipal, kms:RetiringPrincipal,
kms:GrantIsForAWSResource, kms:GrantConstraintType).
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Mapping

from kms.errors import AccessDeniedException
from kms.iam import AuthzRequest, Decision, PolicyError, Reason, evaluate, parse_policy
from kms.iam.policy import Policy, with_principal_ids
from kms.model import Caller, Key

__all__ = ["authorize", "authorize_account", "evaluate_key", "key_request", "request_context",
           "decision_record", "default_key_policy", "aws_managed_key_policy", "key_policy",
           "denied"]

KEY_POLICY_NAME = "key policy"


_CACHE: OrderedDict[str, Policy | None] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 512


def key_policy(text: str) -> Policy | None:
    """The parsed key policy (cached by text); None if it does not parse (nothing allows)."""
    with _CACHE_LOCK:
        if text in _CACHE:
            _CACHE.move_to_end(text)
            return _CACHE[text]
    try:
        policy: Policy | None = parse_policy(text, kind="resource", name=KEY_POLICY_NAME)
    except PolicyError:
        policy = None
    with _CACHE_LOCK:
        _CACHE[text] = policy
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return policy


def request_context(caller: Caller, key: Key | None = None,
                    encryption_context: Mapping[str, str] | None = None,
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The condition keys of one KMS request (see the module docstring)."""
    ctx: dict[str, Any] = {
        "aws:SourceIp": caller.source_ip or None,
        "aws:SecureTransport": bool(caller.secure_transport),
        "aws:RequestedRegion": getattr(caller, "requested_region", None),
        "kms:CallerAccount": caller.account_id,
        "kms:ViaService": caller.via_service,
    }
    if key is not None:
        meta = key.metadata
        ctx.update({"kms:KeySpec": str(meta.key_spec), "kms:KeyUsage": str(meta.key_usage),
                    "kms:KeyOrigin": str(meta.origin), "kms:KeyManager": str(meta.key_manager),
                    "kms:CustomerMasterKeySpec": str(meta.key_spec),
                    "kms:CustomerMasterKeyUsage": str(meta.key_usage)})
    if encryption_context:
        # The key part of kms:EncryptionContext:<k> is case-insensitive (normalize_context
        # lower-cases context keys); values keep their case.
        for k, v in encryption_context.items():
            ctx[f"kms:EncryptionContext:{k}"] = v
        ctx["kms:EncryptionContextKeys"] = list(encryption_context)
    if extra:
        ctx.update(extra)
    return ctx


def key_request(caller: Caller, action: str, key: Key,
                encryption_context: Mapping[str, str] | None = None,
                extra: Mapping[str, Any] | None = None) -> AuthzRequest:
    return AuthzRequest(principal_arn=caller.principal_arn, action=f"kms:{action}",
                        resource=key.arn, principal_account=caller.account_id,
                        context=request_context(caller, key, encryption_context, extra),
                        user_name=getattr(caller, "user_name", None),
                        user_id=getattr(caller, "user_id", None))


def evaluate_key(caller: Caller, action: str, key: Key,
                 encryption_context: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None,
                 clock: Callable[[], float] = time.time) -> tuple[Decision, AuthzRequest]:
    """Decide ``kms:<action>`` on ``key`` from the key policy and identity policies only."""
    request = key_request(caller, action, key, encryption_context, extra)
    policy = key_policy(key.policy)
    if policy is not None:
        # The users the policy names match only under the ids saved with it (kms.iam.policy,
        # "Principals saved as unique ids"); the parsed document is cached by text alone.
        policy = with_principal_ids(policy, key.policy_principals)
    decision = evaluate(request, list(getattr(caller, "identity_policies", ()) or ()),
                        policy, resource_account=key.account_id,
                        resource_policy_required=True, clock=clock)
    return decision, request


def denied(decision: Decision, request: AuthzRequest) -> AccessDeniedException:
    """AccessDeniedException with AWS's message; ``.decision`` keeps the Decision."""
    exc = AccessDeniedException(decision.aws_message(request))
    exc.decision = decision  # type: ignore[attr-defined]
    return exc


def authorize(caller: Caller, action: str, key: Key,
              context: Mapping[str, str] | None = None, *,
              extra: Mapping[str, Any] | None = None,
              clock: Callable[[], float] = time.time) -> Decision:
    """The Decision allowing ``caller`` to perform ``kms:<action>`` on ``key``; raises
    AccessDeniedException with AWS's message otherwise. Grants are not
    consulted here (see ``kms.grants.GrantOps._authorize``)."""
    decision, request = evaluate_key(caller, action, key, context, extra, clock)
    if not decision.allowed:
        raise denied(decision, request)
    return decision


def authorize_account(caller: Caller, action: str, account_id: str | None = None,
                      extra: Mapping[str, Any] | None = None,
                      clock: Callable[[], float] = time.time, *,
                      resource: str = "*") -> Decision:
    """Operations on no key (CreateKey, ListKeys, ListAliases, ListRetirableGrants...): the
    account root may; an IAM user needs an identity-policy Allow on ``resource``. A
    ``resource`` of another account (``account_id``) is denied: no resource policy opens it."""
    request = AuthzRequest(principal_arn=caller.principal_arn, action=f"kms:{action}",
                           resource=resource, principal_account=caller.account_id,
                           context=request_context(caller, None, None, extra),
                           user_name=getattr(caller, "user_name", None),
                           user_id=getattr(caller, "user_id", None))
    decision = evaluate(request, list(getattr(caller, "identity_policies", ()) or ()), None,
                        resource_account=caller.account_id if account_id is None else account_id,
                        clock=clock)
    if not decision.allowed:
        raise denied(decision, request)
    return decision


def decision_record(decision: Decision | None, *, grant_id: str | None = None,
                    allowed: bool | None = None) -> dict[str, Any] | None:
    """The audit record's ``authorizationDecision``: which statement or grant decided."""
    if grant_id is not None:
        return {"allowed": True if allowed is None else allowed, "reason": "grant-allow",
                "grantId": grant_id}
    if decision is None:
        return None
    out: dict[str, Any] = {"allowed": decision.allowed, "reason": decision.reason}
    if decision.statement is not None:
        name, sid = decision.statement
        out["policy"] = name or None
        out["statementSid"] = sid
    elif decision.reason == Reason.ACCOUNT_ROOT:
        out["policy"] = None
    return out


def default_key_policy(account_id: str) -> str:
    """AWS's default key policy: delegate to IAM through the account root (DG/key-policy-default)."""
    return json.dumps({
        "Version": "2012-10-17", "Id": "key-default-1",
        "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                       "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                       "Action": "kms:*", "Resource": "*"}]})


def aws_managed_key_policy(account_id: str, service: str, region: str) -> str:
    """The policy AWS attaches to an AWS-managed key such as ``aws/s3``."""
    return json.dumps({
        "Version": "2012-10-17", "Id": f"auto-{service}-2",
        "Statement": [
            {"Sid": f"Allow access through {service.upper()} for all principals in the account "
                    f"that are authorized to use {service.upper()}",
             "Effect": "Allow", "Principal": {"AWS": "*"},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                        "kms:DescribeKey"],
             "Resource": "*",
             "Condition": {"StringEquals": {
                 "kms:CallerAccount": account_id,
                 "kms:ViaService": f"{service}.{region}.amazonaws.com"}}},
            {"Sid": "Allow direct access to key metadata to the account", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
             "Action": ["kms:Describe*", "kms:Get*", "kms:List*"], "Resource": "*"}]})
