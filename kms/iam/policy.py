"""The IAM policy language: JSON documents parsed and validated into typed statements.

Grammar [IAM User Guide, "Grammar of the IAM JSON policy language"]::

    policy     = { "Version"?: "2012-10-17" | "2008-10-17", "Id"?: str,
                   "Statement": statement | [statement, ...] }
    statement  = { "Sid"?: str, "Effect": "Allow" | "Deny",
                   ("Principal" | "NotPrincipal")?: "*" | { kind: str | [str] },
                   ("Action" | "NotAction"): str | [str],
                   ("Resource" | "NotResource"): str | [str],
                   "Condition"?: { [qualifier ":"] operator ["IfExists"]:
                                   { key: value | [value] } } }
    kind       = "AWS" | "Service" | "Federated" | "CanonicalUser"

Identity policies (inline and managed) must not name a principal; resource policies (bucket
policies, key policies) must. This is the one parser of all three kinds (IAM, S3 bucket and KMS
key policies); each caller adds only its own rules (S3: actions and resources of the bucket;
KMS: the lockout safety check).

Principals, as AWS accepts them [IAM UG, "AWS JSON policy elements: Principal" and
"NotPrincipal"]::

    aws_principal = "*" | account-id | arn:aws:iam::<acct>:root
                  | arn:aws:iam::<acct>:user/<path><name> | arn:aws:iam::<acct>:role/<path><name>
                  | arn:aws:sts::<acct>:assumed-role/<role>/<session>
                  | arn:aws:sts::<acct>:federated-user/<name>

- no wildcard inside a principal: "*" stands alone ("You cannot use a wildcard to match part of
  a principal name or ARN"); ``user/*`` in a Deny would otherwise silently deny nobody;
- ``NotPrincipal`` only with ``"Effect": "Deny"`` ("Using it with Allow is not supported");
- a user or role ARN must name an existing principal: AWS resolves it to the principal's unique
  id when the policy is saved and rejects it otherwise ("Invalid principal in policy"), so that
  a user created later under that name inherits nothing. The caller that knows the principals
  passes ``principal_exists`` (the gateway's identity store); it is asked about each user/role
  ARN, which must be the principal's canonical ARN (stored case and path).

Principals saved as unique ids. AWS stores a user principal as the user's unique id when the
policy is saved; if the user is deleted the policy shows the id (``AIDA...``) and a new user
created under the same name does not match it [IAM UG, "AWS JSON policy elements: Principal":
"If your Principal element in a role trust policy contains an ARN that points to a specific
IAM user, then IAM transforms the ARN to the user's unique principal ID when you save the
policy ... if someone ... deletes and recreates the user ... the new user's ID does not match";
"IAM identifiers", unique IDs]. Coffer keeps the document as sent (GetKeyPolicy and
GetBucketPolicy return it unchanged) and the ids beside it: ``user_principals`` lists the user
ARNs a document names, ``resolve_principal_ids`` maps them with the store's lookup when it is
saved, and ``with_principal_ids`` attaches the saved map to the parsed policy, so the one
evaluator (``kms.iam.evaluate.names_principal``) matches a user ARN only for the user whose id
was saved. Key policies, bucket policies and grants all go this way.

These principal rules are save-time rules (``saving=True``: PutUserPolicy, CreatePolicy,
PutBucketPolicy, CreateKey, PutKeyPolicy). A document already stored is read with the older,
looser principal form (``saving=False``), so that a policy saved before the rules existed still
loads with all its other statements (a bucket policy that stopped parsing would lose its Denies);
the evaluator reads such statements the closed way (``kms.iam.evaluate``).

Bad JSON of any shape (invalid UTF-8, nesting deeper than the decoder recurses, numbers too
long to convert) is ``PolicyError`` like every other malformed document, never another
exception. Policy variables (``${aws:username}``) are only recognised under
Version 2012-10-17; with 2008-10-17 (the default when Version is missing) they are literal text,
as AWS does. A document that breaks a rule raises ``PolicyError`` with AWS's message; the caller
maps it to MalformedPolicyDocument (IAM), MalformedPolicyDocumentException (KMS) or
MalformedPolicy (S3).
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from kms.iam.errors import PolicyError

__all__ = ["Policy", "Statement", "Principals", "Condition", "PolicyKind", "PrincipalExists",
           "PrincipalId", "parse_policy", "user_principals", "is_user_arn",
           "resolve_principal_ids", "with_principal_ids", "OPERATORS", "VERSION_2012", "VERSION_2008", "MSG_BAD_PRINCIPAL"]

VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"
PolicyKind = Literal["identity", "resource"]

# Base operators, without IfExists / set qualifiers [IAM UG, "Condition operators"].
OPERATORS = frozenset({
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
    "StringLike", "StringNotLike",
    "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
    "NumericGreaterThan", "NumericGreaterThanEquals",
    "DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool", "BinaryEquals", "IpAddress", "NotIpAddress",
    "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
})
_QUALIFIERS = ("ForAllValues", "ForAnyValue")
_TOP = {"Version", "Id", "Statement"}
_STATEMENT = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
              "NotResource", "Condition"}
_PRINCIPAL_KINDS = ("AWS", "Service", "Federated", "CanonicalUser")
# Partition, account and resource of an AWS principal; names are IAM names (ASCII
# [\w+=,.@-], paths of printable ASCII) [IAM UG, "IAM identifiers"], never a wildcard.
_NAME = r"[A-Za-z0-9_+=,.@-]{1,128}"
_PATH = r"(?:/[\x21-\x29\x2b-\x3e\x40-\x7e]+)*/"        # printable ASCII less * and ?
_LEGACY_AWS_PRINCIPAL = re.compile(r"(\*|\d{12}|arn:aws[a-z-]*:(iam|sts)::\d{12}:\S+)")
_AWS_PRINCIPAL = re.compile(
    r"(?:\*|\d{12}|arn:aws(?:-[a-z]+)*:(?:"
    rf"iam::\d{{12}}:(?:root|(?P<kind>user|role){_PATH}{_NAME})"
    rf"|sts::\d{{12}}:(?:assumed-role/{_NAME}/{_NAME}|federated-user/{_NAME})))", re.ASCII)
_ACTION = re.compile(r"^(\*|[A-Za-z0-9-]+:[A-Za-z0-9*?_-]*)$")

# AWS's wording [IAM API errors as returned by PutUserPolicy / CreatePolicy].
MSG_SYNTAX = "Syntax errors in policy."
MSG_PRINCIPAL_FORBIDDEN = "Policy document should not specify a principal."
MSG_PRINCIPAL_MISSING = "Missing required field Principal"
MSG_BAD_PRINCIPAL = "Invalid principal in policy"
MSG_NO_ACTIONS = "Policy statement must contain actions."
MSG_NO_RESOURCES = "Policy statement must contain resources."
MSG_VENDOR = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
MSG_LEGACY = "The policy failed legacy parsing"
MSG_NOT_PRINCIPAL_ALLOW = MSG_BAD_PRINCIPAL     # NotPrincipal with Allow [IAM UG NotPrincipal]

PrincipalExists = Callable[[str], bool]
# user ARN -> the unique id of the stored user it names canonically, or None.
PrincipalId = Callable[[str], "str | None"]
_USER_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:iam::\d{12}:user/\S+", re.ASCII)


@dataclass(frozen=True, slots=True)
class Principals:
    """A Principal / NotPrincipal element. ``wildcard`` is the bare ``"*"`` form."""

    wildcard: bool = False
    aws: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    federated: tuple[str, ...] = ()
    canonical_user: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Condition:
    """One key test: ``[qualifier:]operator[IfExists]`` applied to ``key`` with ``values``."""

    operator: str                   # base operator, e.g. "StringLike"
    key: str                        # as written; lookups are case-insensitive
    values: tuple[str, ...]         # normalised to strings (true/false for booleans)
    qualifier: str | None = None    # "ForAllValues" | "ForAnyValue"
    if_exists: bool = False

    @property
    def label(self) -> str:
        q = f"{self.qualifier}:" if self.qualifier else ""
        return f"{q}{self.operator}{'IfExists' if self.if_exists else ''}"


@dataclass(frozen=True, slots=True)
class Statement:
    effect: Literal["Allow", "Deny"]
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    sid: str | None = None
    not_action: bool = False
    not_resource: bool = False
    principal: Principals | None = None     # None in identity policies
    not_principal: bool = False
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    statements: tuple[Statement, ...]
    version: str = VERSION_2008
    id: str | None = None
    name: str = ""          # how decisions name it: inline policy name, policy ARN, "key policy"
    # The unique id (AIDA...) of each IAM user the document names, as resolved when it was
    # saved (module docstring, "Principals saved as unique ids"): ((user ARN, user id), ...).
    # None: a document saved before ids were kept, or by a caller that knows no users.
    principal_ids: tuple[tuple[str, str], ...] | None = None

    @property
    def variables(self) -> bool:
        return self.version == VERSION_2012


def _strings(value: Any, missing: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PolicyError(missing)
    if not all(isinstance(v, str) and v for v in items):
        raise PolicyError(MSG_SYNTAX)
    return tuple(items)


@dataclass(frozen=True, slots=True)
class _Rules:
    saving: bool
    principal_exists: PrincipalExists | None


def _aws_principal(p: str, rules: _Rules) -> None:
    if not rules.saving:
        if not _LEGACY_AWS_PRINCIPAL.fullmatch(p):
            raise PolicyError(MSG_BAD_PRINCIPAL)
        return
    m = _AWS_PRINCIPAL.fullmatch(p)
    if m is None:
        raise PolicyError(MSG_BAD_PRINCIPAL)
    if m.group("kind") and rules.principal_exists is not None and not rules.principal_exists(p):
        raise PolicyError(MSG_BAD_PRINCIPAL)


def _principals(value: Any, rules: _Rules) -> Principals:
    if isinstance(value, str) and value == "*":
        return Principals(wildcard=True)
    if not isinstance(value, dict) or not value or set(value) - set(_PRINCIPAL_KINDS):
        raise PolicyError(MSG_BAD_PRINCIPAL)
    found: dict[str, tuple[str, ...]] = {}
    for k, ids in value.items():
        items = _strings(ids, MSG_BAD_PRINCIPAL)
        if k == "AWS":
            for p in items:
                _aws_principal(p, rules)
        found[k] = items
    return Principals(aws=found.get("AWS", ()), service=found.get("Service", ()),
                      federated=found.get("Federated", ()),
                      canonical_user=found.get("CanonicalUser", ()))


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        try:
            return str(v)
        except ValueError:      # an int past sys.get_int_max_str_digits()
            raise PolicyError(MSG_SYNTAX) from None
    if isinstance(v, str):
        return v
    raise PolicyError(MSG_SYNTAX)


def _split_operator(name: str) -> tuple[str | None, str, bool]:
    qualifier = None
    if ":" in name:
        qualifier, _, name = name.partition(":")
        if qualifier not in _QUALIFIERS:
            raise PolicyError(f"Invalid Condition type : {qualifier}:{name}")
    if_exists = name.endswith("IfExists") and name != "IfExists"
    base = name[: -len("IfExists")] if if_exists else name
    if base not in OPERATORS or (if_exists and base == "Null"):
        raise PolicyError(f"Invalid Condition type : {name}")
    return qualifier, base, if_exists


def _conditions(value: Any) -> tuple[Condition, ...]:
    if not isinstance(value, dict):
        raise PolicyError(MSG_SYNTAX)
    out: list[Condition] = []
    for op_name, block in value.items():
        if not isinstance(op_name, str):
            raise PolicyError(MSG_SYNTAX)
        qualifier, base, if_exists = _split_operator(op_name)
        if not isinstance(block, dict) or not block:
            raise PolicyError(MSG_SYNTAX)
        for key, raw in block.items():
            if not isinstance(key, str) or ":" not in key:
                raise PolicyError(MSG_VENDOR)
            items = raw if isinstance(raw, list) else [raw]
            if not items:
                raise PolicyError(MSG_SYNTAX)
            values = tuple(_value(v) for v in items)
            if base == "Null" and not all(v.lower() in ("true", "false") for v in values):
                raise PolicyError(MSG_SYNTAX)
            out.append(Condition(operator=base, key=key, values=values, qualifier=qualifier,
                                 if_exists=if_exists))
    return tuple(out)


def _statement(st: Any, kind: PolicyKind, rules: _Rules) -> Statement:
    if not isinstance(st, dict) or set(st) - _STATEMENT:
        raise PolicyError(MSG_SYNTAX)
    sid = st.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyError(MSG_SYNTAX)
    effect = st.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(MSG_SYNTAX if effect is not None else "Missing required field Effect")
    if "Principal" in st and "NotPrincipal" in st:
        raise PolicyError(MSG_SYNTAX)
    has_principal = "Principal" in st or "NotPrincipal" in st
    if kind == "identity" and has_principal:
        raise PolicyError(MSG_PRINCIPAL_FORBIDDEN)
    if kind == "resource" and not has_principal:
        raise PolicyError(MSG_PRINCIPAL_MISSING)
    if rules.saving and "NotPrincipal" in st and effect != "Deny":
        raise PolicyError(MSG_NOT_PRINCIPAL_ALLOW)
    principal = None
    if has_principal:
        principal = _principals(st.get("Principal", st.get("NotPrincipal")), rules)
    if ("Action" in st) == ("NotAction" in st):
        raise PolicyError(MSG_NO_ACTIONS if "Action" not in st else MSG_SYNTAX)
    actions = _strings(st.get("Action", st.get("NotAction")), MSG_NO_ACTIONS)
    # Saving: the whole action, so "s3:GetObject\n" (which matches no request; in a Deny it
    # would deny nothing) is refused; stored documents keep the looser read.
    action_ok = _ACTION.fullmatch if rules.saving else _ACTION.match
    if not all(action_ok(a) for a in actions):
        raise PolicyError(MSG_VENDOR)
    if ("Resource" in st) == ("NotResource" in st):
        raise PolicyError(MSG_NO_RESOURCES if "Resource" not in st else MSG_SYNTAX)
    resources = _strings(st.get("Resource", st.get("NotResource")), MSG_NO_RESOURCES)
    for r in resources:
        if r != "*" and not r.startswith("arn:"):
            raise PolicyError(f'Resource {r} must be in ARN format or "*".')
    return Statement(effect=effect, actions=actions, resources=resources, sid=sid,
                     not_action="NotAction" in st, not_resource="NotResource" in st,
                     principal=principal, not_principal="NotPrincipal" in st,
                     conditions=_conditions(st.get("Condition", {})))


def _decode(document: str | bytes) -> Any:
    try:
        text = document.decode() if isinstance(document, bytes) else document
        if not text.strip():
            raise PolicyError(MSG_SYNTAX)
        return json.loads(text)
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 and bad JSON; RecursionError is the decoder giving up
        # on nesting deeper than the interpreter's recursion limit (issue 11, finding 16).
        raise PolicyError(MSG_SYNTAX) from None


def parse_policy(document: str | bytes | Mapping[str, Any], *, kind: PolicyKind = "identity",
                 name: str = "", saving: bool = False,
                 principal_exists: PrincipalExists | None = None) -> Policy:
    """Parse and validate one policy document; raises ``PolicyError`` (AWS's message) and
    nothing else. ``saving`` applies the save-time principal rules; ``principal_exists(arn)``
    (implies ``saving``) is asked about every user / role principal ARN (module docstring)."""
    rules = _Rules(saving or principal_exists is not None, principal_exists)
    if isinstance(document, (str, bytes)):
        doc = _decode(document)
    else:
        doc = document
    if not isinstance(doc, Mapping) or set(doc) - _TOP:
        raise PolicyError(MSG_SYNTAX)
    version = doc.get("Version", VERSION_2008)
    if version not in (VERSION_2012, VERSION_2008):
        raise PolicyError(MSG_LEGACY)
    pid = doc.get("Id")
    if pid is not None and not isinstance(pid, str):
        raise PolicyError(MSG_SYNTAX)
    raw = doc.get("Statement")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise PolicyError(MSG_SYNTAX)
    statements = tuple(_statement(st, kind, rules) for st in raw)
    sids = [s.sid for s in statements if s.sid]
    if len(sids) != len(set(sids)):
        raise PolicyError("Statement IDs (SID) in a single policy must be unique")
    return Policy(statements=statements, version=version, id=pid, name=name)


def is_user_arn(principal: str) -> bool:
    """Whether ``principal`` is an IAM user ARN (the principals saved as unique ids)."""
    return bool(_USER_ARN.fullmatch(principal)) and "*" not in principal


def user_principals(policy: Policy) -> tuple[str, ...]:
    """The IAM user ARNs named in the document's Principal / NotPrincipal elements, sorted."""
    found = {p for st in policy.statements if st.principal is not None
             for p in st.principal.aws if is_user_arn(p)}
    return tuple(sorted(found))


def resolve_principal_ids(policy: Policy | None, lookup: PrincipalId,
                          extra: tuple[str | None, ...] = ()) -> tuple[tuple[str, str], ...]:
    """((user ARN, unique id), ...) for every user the document (and ``extra``: a grant's
    grantee and retiring principal) names, as ``lookup`` resolves them now, at save time. A
    user ``lookup`` does not know gets the id "" and so matches no caller, ever."""
    arns = set(user_principals(policy)) if policy is not None else set()
    arns |= {a for a in extra if a and is_user_arn(a)}
    return tuple(sorted((arn, lookup(arn) or "") for arn in arns))


def with_principal_ids(policy: Policy, ids: tuple[tuple[str, str], ...] | None) -> Policy:
    """``policy`` carrying the ids saved with it (None: saved before ids were kept)."""
    if ids is None and policy.principal_ids is None:
        return policy
    return dataclasses.replace(policy, principal_ids=None if ids is None else tuple(ids))
