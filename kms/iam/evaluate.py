"""Policy evaluation: may this principal perform this action on this resource?

AWS's logic for a request inside one partition [IAM UG, "Policy evaluation logic" and
"Cross-account policy evaluation logic"; KMS DG, "Key policies"]::

    ctx      = request context + aws:PrincipalArn/PrincipalAccount/username/userid/CurrentTime
    if any applicable Deny (identity policies, or resource policy naming the caller): DENY
    identity = caller is its account's root  or  an identity-policy Allow applies
    resource = a resource-policy Allow applies and names the caller
               (direct: "*", the caller's ARN, a matching Service;
                account: the caller's account root / id, i.e. "delegated to that account's IAM")
    if resource_policy_required (KMS key policy):
        allow iff resource.direct and (same account or identity)
               or resource.account and identity
    elif same account:
        allow iff resource.direct or identity
    else (cross account):
        allow iff (resource.direct or resource.account) and identity
    anonymous / service callers: allow iff resource.direct

NotPrincipal (Deny only) applies to every caller it does not name *directly*: an account entry
exempts that account's root, never its users (a user is spared only when listed itself)
[IAM UG, "AWS JSON policy elements: NotPrincipal"]. Two shapes refused on save can still come
from documents stored earlier and are read closed: Allow + NotPrincipal opens nothing; a Deny
whose principal ARN holds a wildcard denies the callers the pattern matches.

A user ARN in a Principal matches only the user whose unique id was saved with the document
(``names_principal``; kms.iam.policy, "Principals saved as unique ids"): a user deleted and
re-created under the same name is neither allowed, denied nor exempted by it.

A statement applies when its Action / NotAction matches (case-insensitive wildcards), its
Resource / NotResource matches (case-sensitive wildcards, policy variables), and all of its
conditions hold. Every ``Decision`` names the statement that decided it.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from kms.iam.arn import is_account_id, principal_account, root_arn
from kms.iam.conditions import Context, conditions_hold, normalize_context, wildcard_match
from kms.iam.policy import Policy, Statement, is_user_arn

__all__ = ["AuthzRequest", "Decision", "Reason", "evaluate", "statement_applies",
           "build_context", "names_principal"]


class Reason:
    """``Decision.reason`` values."""

    EXPLICIT_DENY_IDENTITY = "explicit-deny-identity"
    EXPLICIT_DENY_RESOURCE = "explicit-deny-resource"
    IDENTITY_ALLOW = "identity-allow"
    RESOURCE_ALLOW = "resource-allow"
    ACCOUNT_ROOT = "account-root"
    NO_IDENTITY_ALLOW = "no-identity-allow"
    NO_RESOURCE_ALLOW = "no-resource-allow"


@dataclass(frozen=True, slots=True)
class AuthzRequest:
    """Who asks to do what to which resource, and the request's condition keys.

    ``principal_arn`` is ``arn:aws:iam::<acct>:root`` for an account root, a user ARN for an IAM
    user, "" for anonymous callers. ``service_principal`` is set (``s3.amazonaws.com``) when an
    AWS service acts on its own behalf. ``context`` holds condition keys (``aws:SourceIp``,
    ``s3:prefix``, ``kms:EncryptionContext:dept``...); values may be str, bool, numbers,
    datetimes or lists (multivalued keys).
    """

    principal_arn: str
    action: str
    resource: str
    principal_account: str | None = None    # derived from principal_arn when None
    context: Mapping[str, Any] = field(default_factory=dict)
    user_name: str | None = None
    user_id: str | None = None
    service_principal: str | None = None

    @property
    def account(self) -> str | None:
        if self.principal_account:
            return self.principal_account
        return principal_account(self.principal_arn) if self.principal_arn else None

    @property
    def is_root(self) -> bool:
        acct = self.account
        return acct is not None and self.principal_arn == root_arn(acct)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, why, and the deciding statement as (policy name, Sid)."""

    allowed: bool
    reason: str
    statement: tuple[str, str | None] | None = None

    def __bool__(self) -> bool:
        return self.allowed

    def explain(self) -> str:
        where = ""
        if self.statement is not None:
            name, sid = self.statement
            where = f" (policy {name or '<unnamed>'!r}, statement {sid or '<no Sid>'!r})"
        return f"{'allowed' if self.allowed else 'denied'}: {self.reason}{where}"

    def aws_message(self, request: AuthzRequest) -> str:
        """AWS's AccessDenied wording for a denial."""
        who = request.principal_arn or "anonymous"
        head = (f"User: {who} is not authorized to perform: {request.action} on resource: "
                f"{request.resource}")
        tail = {
            Reason.EXPLICIT_DENY_IDENTITY: " with an explicit deny in an identity-based policy",
            Reason.EXPLICIT_DENY_RESOURCE: " with an explicit deny in a resource-based policy",
            Reason.NO_RESOURCE_ALLOW:
                f" because no resource-based policy allows the {request.action} action",
        }.get(self.reason, f" because no identity-based policy allows the {request.action} "
                           "action")
        return head + tail


def build_context(request: AuthzRequest, clock: Callable[[], float] = time.time) -> Context:
    """The request's condition keys plus the ones every AWS request carries."""
    raw: dict[str, Any] = {}
    if request.principal_arn:
        raw["aws:PrincipalArn"] = request.principal_arn
        raw["aws:PrincipalType"] = "Account" if request.is_root else "User"
    if request.account:
        raw["aws:PrincipalAccount"] = request.account
    if request.user_name:
        raw["aws:username"] = request.user_name
    if request.user_id:
        raw["aws:userid"] = request.user_id
    elif request.is_root:
        raw["aws:userid"] = request.account
    now = dt.datetime.fromtimestamp(clock(), dt.timezone.utc)
    raw["aws:CurrentTime"] = now
    raw["aws:EpochTime"] = int(now.timestamp())
    ctx = normalize_context(raw)
    ctx.update(normalize_context(request.context))
    return ctx


def _action_matches(st: Statement, action: str) -> bool:
    hit = any(wildcard_match(p, action, ignore_case=True) for p in st.actions)
    return hit != st.not_action


def _resource_matches(st: Statement, resource: str, ctx: Context | None) -> bool:
    hit = any(p == "*" or wildcard_match(p, resource, ctx=ctx) for p in st.resources)
    return hit != st.not_resource


def statement_applies(st: Statement, request: AuthzRequest, ctx: Context, *,
                      variables: bool = True) -> bool:
    """Action, Resource and Condition of ``st`` match (the Principal is checked apart)."""
    vctx = ctx if variables else None
    return (_action_matches(st, request.action)
            and _resource_matches(st, request.resource, vctx)
            and conditions_hold(st.conditions, ctx, variables=variables))


_DIRECT, _ACCOUNT = "direct", "account"


def names_principal(entry: str, principal_arn: str, user_id: str | None,
                    saved_ids: Mapping[str, str] | None) -> bool:
    """Whether the principal ``entry`` of a policy or grant names the caller
    (``principal_arn``, ``user_id``). A user ARN saved with its unique id names only the user
    with that id: a user deleted and re-created under the same name is another principal
    [IAM UG, "AWS JSON policy elements: Principal"; kms.iam.policy, "Principals saved as
    unique ids"]. ``saved_ids`` None: the document predates saved ids and is matched by ARN.
    """
    if not principal_arn or entry != principal_arn:
        return False
    if saved_ids is None or not is_user_arn(entry):
        return True
    want = saved_ids.get(entry)
    return bool(want) and user_id is not None and want == user_id


def _principal_match(st: Statement, request: AuthzRequest,
                     saved_ids: Mapping[str, str] | None = None) -> str:
    """How a resource-policy statement names the caller: "direct", "account" or ""."""
    p = st.principal
    if p is None:
        return ""
    if st.not_principal and st.effect != "Deny":
        # Only a document stored before the save-time rules can hold this; AWS does not support
        # it [IAM UG, "NotPrincipal"], so it opens nothing.
        return ""
    acct = request.account
    found = ""
    if p.wildcard or "*" in p.aws:
        found = _DIRECT
    elif request.service_principal and request.service_principal in p.service:
        found = _DIRECT
    elif any(names_principal(e, request.principal_arn, request.user_id, saved_ids)
             for e in p.aws):
        found = _DIRECT
    elif (request.principal_arn and st.effect == "Deny" and not st.not_principal
          and any(("*" in e or "?" in e) and wildcard_match(e, request.principal_arn)
                  for e in p.aws)):
        # A wildcard inside a principal ARN is refused on save; a stored legacy Deny that
        # has one is read as the pattern its author meant, so it denies rather than nobody.
        found = _DIRECT
    elif acct and not request.service_principal:
        for entry in p.aws:
            named = entry if is_account_id(entry) else (
                principal_account(entry) if entry.endswith(":root") else None)
            if named == acct:
                found = _DIRECT if request.is_root else _ACCOUNT
                break
    if st.not_principal:
        # NotPrincipal (Deny only) applies to everyone it does not list. Listing an account
        # exempts that account's root, not its users: a user is spared only when it is listed
        # itself [IAM UG, "AWS JSON policy elements: NotPrincipal": "you must also specify the
        # account ARN of the not-denied principal", i.e. the account entry alone is no user's
        # exemption]. So only a direct match counts here (issue 11, finding 9).
        return "" if found == _DIRECT else _DIRECT
    return found


def _label(policy: Policy, st: Statement) -> tuple[str, str | None]:
    return (policy.name or policy.id or "", st.sid)


def _first(policies: Iterable[Policy], effect: str, request: AuthzRequest, ctx: Context,
           principal: Callable[[Statement], str] | None = None
           ) -> tuple[Policy, Statement, str] | None:
    for policy in policies:
        for st in policy.statements:
            if st.effect != effect:
                continue
            how = principal(st) if principal else _DIRECT
            if how and statement_applies(st, request, ctx, variables=policy.variables):
                return policy, st, how
    return None


def evaluate(request: AuthzRequest, identity_policies: list[Policy],
             resource_policy: Policy | None, *, resource_account: str,
             resource_policy_required: bool = False,
             clock: Callable[[], float] = time.time) -> Decision:
    """Decide ``request`` as AWS does (see the module docstring).

    ``identity_policies`` are the caller's inline and attached policies (empty for roots and
    anonymous callers); ``resource_policy`` is the bucket or key policy, if any.
    ``resource_policy_required`` is for KMS keys: only the key policy can open a key, and an
    account root gets no implicit access.
    """
    ctx = build_context(request, clock)
    anonymous = request.account is None or bool(request.service_principal)
    identities = [] if anonymous else list(identity_policies)
    resources = [resource_policy] if resource_policy is not None else []
    saved = (dict(resource_policy.principal_ids)
             if resource_policy is not None and resource_policy.principal_ids is not None
             else None)
    by_principal = lambda st: _principal_match(st, request, saved)  # noqa: E731

    hit = _first(identities, "Deny", request, ctx)
    if hit:
        return Decision(False, Reason.EXPLICIT_DENY_IDENTITY, _label(hit[0], hit[1]))
    hit = _first(resources, "Deny", request, ctx, by_principal)
    if hit:
        return Decision(False, Reason.EXPLICIT_DENY_RESOURCE, _label(hit[0], hit[1]))

    # A statement naming the caller directly outranks one delegating to its account.
    res = (_first(resources, "Allow", request, ctx, lambda st: by_principal(st) == _DIRECT
                  and _DIRECT or "")
           or _first(resources, "Allow", request, ctx, by_principal))
    if anonymous:
        if res and res[2] == _DIRECT:
            return Decision(True, Reason.RESOURCE_ALLOW, _label(res[0], res[1]))
        return Decision(False, Reason.NO_RESOURCE_ALLOW)

    ident = _first(identities, "Allow", request, ctx)
    identity_ok = request.is_root or ident is not None
    ident_label = _label(ident[0], ident[1]) if ident else None
    ident_decision = (Decision(True, Reason.IDENTITY_ALLOW, ident_label) if ident
                      else Decision(True, Reason.ACCOUNT_ROOT))
    same = request.account == resource_account

    if resource_policy_required or not same:
        if res is None:
            return Decision(False, Reason.NO_RESOURCE_ALLOW)
        if res[2] == _DIRECT and (same or identity_ok):
            return Decision(True, Reason.RESOURCE_ALLOW, _label(res[0], res[1]))
        if identity_ok:
            if res[2] == _ACCOUNT and ident is not None:
                return ident_decision
            return Decision(True, Reason.RESOURCE_ALLOW, _label(res[0], res[1]))
        return Decision(False, Reason.NO_IDENTITY_ALLOW)

    if res and res[2] == _DIRECT:
        return Decision(True, Reason.RESOURCE_ALLOW, _label(res[0], res[1]))
    if identity_ok:
        return ident_decision
    return Decision(False, Reason.NO_IDENTITY_ALLOW)
