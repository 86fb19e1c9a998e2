"""Authorization of KMS calls: one function, replaced wholesale by the policies issue.

Until key policies, IAM policies and grants are evaluated (DESIGN.md "Policies"), the rule is:
a caller may use keys of its own account only. AWS-managed keys (``alias/aws/<service>``) get
the permissions of the key policy AWS generates for them: Describe/Get/List for the account,
and the cryptographic operations only through their service (``kms:ViaService``) for callers
of the same account (``kms:CallerAccount``).
"""
from __future__ import annotations

import json

from kms.errors import AccessDeniedException
from kms.model import Caller, Key, KeyManager

__all__ = ["authorize", "default_key_policy", "aws_managed_key_policy"]

_VIA_SERVICE_ACTIONS = frozenset({
    "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext", "DescribeKey", "CreateGrant", "ListGrants"})


def _denied(caller: Caller, action: str, key: Key) -> AccessDeniedException:
    # The message form AWS uses when neither an identity nor a resource policy allows the call.
    return AccessDeniedException(
        f"User: {caller.principal_arn} is not authorized to perform: kms:{action} on resource: "
        f"{key.arn} because no resource-based policy allows the kms:{action} action")


def authorize(caller: Caller, action: str, key: Key) -> None:
    """Raise AccessDeniedException unless ``caller`` may perform ``kms:<action>`` on ``key``."""
    if caller.account_id != key.account_id:
        raise _denied(caller, action, key)
    if key.metadata.key_manager is KeyManager.AWS:
        if action.startswith(("Describe", "Get", "List")):
            return
        if action in _VIA_SERVICE_ACTIONS and caller.via_service is not None \
                and caller.via_service == _via_service(key.policy):
            return
        raise _denied(caller, action, key)


def _via_service(policy: str) -> str | None:
    try:
        doc = json.loads(policy)
        for st in doc.get("Statement", []):
            via = st.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")
            if isinstance(via, str):
                return via
    except (ValueError, AttributeError):
        pass
    return None


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
