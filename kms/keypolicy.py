"""Key policy documents: the checks AWS makes when a policy is set (CreateKey, PutKeyPolicy).

Policies are stored, not yet evaluated for authorization (a later issue replaces
``kms.authz.authorize``). What is checked now, as AWS does [BC PutKeyPolicy; IAM policy grammar]:

- JSON object of ``Version`` (2012-10-17 or 2008-10-17), optional ``Id``, ``Statement`` (one
  statement or a non-empty list); anything else is MalformedPolicyDocumentException;
- each statement: optional ``Sid``; ``Effect`` Allow|Deny; exactly one of Principal /
  NotPrincipal, Action / NotAction, Resource / NotResource; optional ``Condition`` object;
- principals are ``*`` or ``{"AWS"|"Service"|"Federated"|"CanonicalUser": str | [str]}``;
  AWS principals are ``*``, a 12-digit account or an ``arn:aws:iam|sts::<acct>:...`` ARN;
- the lockout safety check: unless BypassPolicyLockoutSafetyCheck, the policy must let the caller
  (itself, its account root, or ``*``) call kms:PutKeyPolicy, unconditionally and not denied.
"""
from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any

from kms.errors import LimitExceededException, MalformedPolicyDocumentException
from kms.model import Caller

__all__ = ["MAX_POLICY", "validate", "check_lockout", "LOCKOUT_MESSAGE"]

MAX_POLICY = 32768             # the 2023 quota (DG/resource-limits), below the model's 131072
LOCKOUT_MESSAGE = ("The new key policy will not allow you to update the key policy in the "
                   "future.")
_VERSIONS = ("2012-10-17", "2008-10-17")
_TOP = {"Version", "Id", "Statement"}
_STATEMENT = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
              "NotResource", "Condition"}
_PRINCIPAL_KINDS = {"AWS", "Service", "Federated", "CanonicalUser"}
_AWS_PRINCIPAL = re.compile(r"^(\*|\d{12}|arn:aws[a-z-]*:(iam|sts)::\d{12}:\S+)$")
_ACTION = re.compile(r"^(\*|[A-Za-z0-9-]+:[A-Za-z0-9*?]+)$")
_BAD_PRINCIPAL = "Policy contains a statement with one or more invalid principals."


def _malformed(why: str) -> MalformedPolicyDocumentException:
    return MalformedPolicyDocumentException(why)


def _strings(value: Any, what: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise _malformed(f"Policy contains a statement with an invalid {what}.")
    return items


def _principal(value: Any) -> None:
    if value == "*":
        return
    if not isinstance(value, dict) or not value or set(value) - _PRINCIPAL_KINDS:
        raise _malformed(_BAD_PRINCIPAL)
    for kind, ids in value.items():
        for p in _strings(ids, "principal"):
            if kind == "AWS" and not _AWS_PRINCIPAL.match(p):
                raise _malformed(_BAD_PRINCIPAL)


def validate(policy: object) -> dict[str, Any]:
    """The parsed document; raises MalformedPolicyDocumentException or, over 32 KB,
    LimitExceededException."""
    if not isinstance(policy, str) or not policy.strip():
        raise _malformed("The policy must be a non-empty JSON string.")
    if len(policy) > MAX_POLICY:
        raise LimitExceededException(f"The policy exceeds {MAX_POLICY} characters.")
    try:
        doc = json.loads(policy)
    except ValueError:
        raise _malformed("The policy is not valid JSON.") from None
    if not isinstance(doc, dict) or set(doc) - _TOP:
        raise _malformed("The policy must be an object of Version, Id and Statement.")
    if doc.get("Version", "2008-10-17") not in _VERSIONS:
        raise _malformed(f"The policy Version must be one of {list(_VERSIONS)}.")
    if "Id" in doc and not isinstance(doc["Id"], str):
        raise _malformed("The policy Id must be a string.")
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise _malformed("The policy must contain a Statement list.")
    for st in statements:
        if not isinstance(st, dict) or set(st) - _STATEMENT:
            raise _malformed("Policy contains a statement with an unknown element.")
        if "Sid" in st and not isinstance(st["Sid"], str):
            raise _malformed("Statement Sid must be a string.")
        if st.get("Effect") not in ("Allow", "Deny"):
            raise _malformed("Statement Effect must be Allow or Deny.")
        for name, what in (("Principal", "principal"), ("Action", "action"),
                           ("Resource", "resource")):
            if (name in st) == (f"Not{name}" in st):
                raise _malformed(f"Each statement must have exactly one of {name} and "
                                 f"Not{name}.")
        _principal(st.get("Principal", st.get("NotPrincipal")))
        for action in _strings(st.get("Action", st.get("NotAction")), "action"):
            if not _ACTION.match(action):
                raise _malformed(f"Policy contains an invalid action: {action}")
        _strings(st.get("Resource", st.get("NotResource")), "resource")
        if "Condition" in st and not isinstance(st["Condition"], dict):
            raise _malformed("Statement Condition must be an object.")
    return doc


def _matches_principal(st: dict[str, Any], names: set[str]) -> bool:
    if "NotPrincipal" in st:
        p = st["NotPrincipal"]
        listed = set() if p == "*" else {x for v in p.values() for x in
                                         (v if isinstance(v, list) else [v])}
        return p != "*" and not (listed & names)
    p = st["Principal"]
    if p == "*":
        return True
    aws = p.get("AWS", [])
    return bool({"*", *names} & set(aws if isinstance(aws, list) else [aws]))


def _matches_action(st: dict[str, Any], action: str) -> bool:
    def hit(patterns: Any) -> bool:
        items = patterns if isinstance(patterns, list) else [patterns]
        return any(fnmatchcase(action.lower(), p.lower()) for p in items)
    return hit(st["Action"]) if "Action" in st else not hit(st["NotAction"])


def check_lockout(doc: dict[str, Any], caller: Caller) -> None:
    """MalformedPolicyDocumentException unless ``doc`` lets ``caller`` PutKeyPolicy later."""
    names = {caller.principal_arn, f"arn:aws:iam::{caller.account_id}:root",
             caller.account_id}
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    allowed = False
    for st in statements:
        if not (_matches_principal(st, names) and _matches_action(st, "kms:PutKeyPolicy")):
            continue
        if st["Effect"] == "Deny":
            raise _malformed(LOCKOUT_MESSAGE)
        if "Condition" not in st:
            allowed = True
    if not allowed:
        raise _malformed(LOCKOUT_MESSAGE)
