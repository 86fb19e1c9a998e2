"""Key policy documents: the checks AWS makes when a policy is set (CreateKey, PutKeyPolicy).

The document is parsed by the one policy parser (``kms.iam.policy.parse_policy``, a resource
policy: every statement names a Principal or, with Deny only, a NotPrincipal), the same that
S3 bucket policies and IAM identity policies go through and that ``kms.authz`` evaluates, so a
policy can never be accepted under one grammar and read under another. What this module adds,
as AWS KMS does [KMS API Reference, PutKeyPolicy / CreateKey]:

- the size quota: over 32 KB is LimitExceededException;
- a parser failure is MalformedPolicyDocumentException with the parser's (AWS's) message;
- principals naming IAM users must exist (``principal_exists``, given by the gateway, which
  holds the IAM users; AWS resolves them when the policy is saved);
- the lockout safety check: unless BypassPolicyLockoutSafetyCheck, the policy must let the caller
  (itself, its account root, or ``*``) call kms:PutKeyPolicy, unconditionally and not denied.
"""
from __future__ import annotations

from kms.errors import LimitExceededException, MalformedPolicyDocumentException
from kms.iam.conditions import wildcard_match
from kms.iam.errors import PolicyError
from kms.iam.policy import (MSG_BAD_PRINCIPAL, Policy, PrincipalExists, Statement,
                            parse_policy)
from kms.model import Caller

__all__ = ["MAX_POLICY", "validate", "check_lockout", "LOCKOUT_MESSAGE",
           "KEY_POLICY_NAME"]

MAX_POLICY = 32768             # the 2023 quota (DG/resource-limits), below the model's 131072
KEY_POLICY_NAME = "key policy"
KMS_BAD_PRINCIPAL = "Policy contains a statement with one or more invalid principals."
LOCKOUT_MESSAGE = ("The new key policy will not allow you to update the key policy in the "
                   "future.")


def validate(policy: object, principal_exists: PrincipalExists | None = None) -> Policy:
    """The parsed key policy; raises MalformedPolicyDocumentException or, over 32 KB,
    LimitExceededException."""
    if not isinstance(policy, str) or not policy.strip():
        raise MalformedPolicyDocumentException("The policy must be a non-empty JSON string.")
    if len(policy) > MAX_POLICY:
        raise LimitExceededException(f"The policy exceeds {MAX_POLICY} characters.")
    try:
        return parse_policy(policy, kind="resource", name=KEY_POLICY_NAME, saving=True,
                            principal_exists=principal_exists)
    except PolicyError as exc:
        # KMS words a bad principal its own way (as returned by CreateKey / PutKeyPolicy);
        # every other message is the parser's.
        message = KMS_BAD_PRINCIPAL if exc.message == MSG_BAD_PRINCIPAL else exc.message
        raise MalformedPolicyDocumentException(message) from None


def _names_caller(st: Statement, names: set[str]) -> bool:
    p = st.principal
    if p is None:
        return False
    listed = p.wildcard or "*" in p.aws or bool(names & set(p.aws))
    # NotPrincipal (Deny only) reaches the caller when it does not list it.
    return not listed if st.not_principal else listed


def _names_put_key_policy(st: Statement) -> bool:
    hit = any(wildcard_match(a, "kms:PutKeyPolicy", ignore_case=True) for a in st.actions)
    return hit != st.not_action


def check_lockout(policy: Policy, caller: Caller) -> None:
    """MalformedPolicyDocumentException unless ``policy`` lets ``caller`` PutKeyPolicy later."""
    names = {caller.principal_arn, f"arn:aws:iam::{caller.account_id}:root",
             caller.account_id}
    allowed = False
    for st in policy.statements:
        if not (_names_caller(st, names) and _names_put_key_policy(st)):
            continue
        if st.effect == "Deny":
            raise MalformedPolicyDocumentException(LOCKOUT_MESSAGE)
        if not st.conditions:
            allowed = True
    if not allowed:
        raise MalformedPolicyDocumentException(LOCKOUT_MESSAGE)
