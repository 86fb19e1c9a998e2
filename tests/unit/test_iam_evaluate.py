"""The policy evaluator, table-driven: each case is (id, request, identity policies, resource
policy, resource account, flags) -> expected (allowed, reason)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from kms.iam.evaluate import AuthzRequest, Decision, Reason, evaluate
from kms.iam.policy import parse_policy

A, B = "111111111111", "222222222222"
ALICE = f"arn:aws:iam::{A}:user/alice"
BOB = f"arn:aws:iam::{B}:user/bob"
ROOT_A, ROOT_B = f"arn:aws:iam::{A}:root", f"arn:aws:iam::{B}:root"
OBJ = "arn:aws:s3:::bkt/docs/report.txt"
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.timezone.utc).timestamp()


def stmt(effect="Allow", action="s3:GetObject", resource="*", **extra) -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource, **extra}


def ident(*statements, version="2012-10-17", name="id-policy"):
    return parse_policy({"Version": version, "Statement": list(statements)}, kind="identity",
                        name=name)


def res(*statements, name="resource-policy"):
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)},
                        kind="resource", name=name)


def rstmt(principal, effect="Allow", action="s3:GetObject", resource="*", **extra):
    return {"Principal": principal, **stmt(effect, action, resource, **extra)}


def cond(op: str, key: str, value) -> dict[str, Any]:
    return {"Condition": {op: {key: value}}}


@dataclass
class Case:
    id: str
    allowed: bool
    identity: list = field(default_factory=list)
    resource: Any = None
    principal: str = ALICE
    action: str = "s3:GetObject"
    target: str = OBJ
    account: str = A
    context: dict = field(default_factory=dict)
    reason: str | None = None
    required: bool = False
    user_name: str | None = "alice"
    service: str | None = None


def req(c: Case) -> AuthzRequest:
    user = c.user_name if ":user/" in c.principal else None
    return AuthzRequest(principal_arn=c.principal, action=c.action, resource=c.target,
                        context=c.context, user_name=user, user_id="AIDAALICE" if user else None,
                        service_principal=c.service)


def cc(id, op, key, value, ctx, allowed, **kw):
    """A condition case: alice's identity allow with one condition."""
    action = kw.get("action", "s3:GetObject")
    return Case(id, allowed, identity=[ident(stmt(action=action, **cond(op, key, value)))],
                context=ctx, **kw)


CASES = [
    # --- same account -------------------------------------------------------------------
    Case("same-identity-allow", True, identity=[ident(stmt())], reason=Reason.IDENTITY_ALLOW),
    Case("same-nothing", False, reason=Reason.NO_IDENTITY_ALLOW),
    Case("same-resource-allow-user", True, resource=res(rstmt({"AWS": ALICE})),
         reason=Reason.RESOURCE_ALLOW),
    Case("same-resource-star", True, resource=res(rstmt("*")), reason=Reason.RESOURCE_ALLOW),
    Case("same-resource-account-root-needs-iam", False,
         resource=res(rstmt({"AWS": ROOT_A})), reason=Reason.NO_IDENTITY_ALLOW),
    Case("same-resource-account-root-plus-iam", True, identity=[ident(stmt())],
         resource=res(rstmt({"AWS": ROOT_A}))),
    Case("same-root-implicit", True, principal=ROOT_A, reason=Reason.ACCOUNT_ROOT),
    Case("same-root-explicit-deny", False, principal=ROOT_A,
         resource=res(rstmt("*", "Deny")), reason=Reason.EXPLICIT_DENY_RESOURCE),
    Case("same-identity-deny-beats-resource-allow", False,
         identity=[ident(stmt("Deny"))], resource=res(rstmt({"AWS": ALICE})),
         reason=Reason.EXPLICIT_DENY_IDENTITY),
    Case("same-resource-deny-beats-identity-allow", False, identity=[ident(stmt())],
         resource=res(rstmt({"AWS": ALICE}, "Deny")), reason=Reason.EXPLICIT_DENY_RESOURCE),
    Case("same-deny-account-principal-covers-users", False, identity=[ident(stmt())],
         resource=res(rstmt({"AWS": A}, "Deny")), reason=Reason.EXPLICIT_DENY_RESOURCE),
    Case("same-other-user-in-resource", False, resource=res(rstmt(
        {"AWS": f"arn:aws:iam::{A}:user/carol"}))),
    Case("same-deny-in-second-identity-policy", False,
         identity=[ident(stmt()), ident(stmt("Deny", "s3:*"))]),
    Case("same-allow-in-second-identity-policy", True,
         identity=[ident(stmt(action="s3:PutObject")), ident(stmt())]),
    # --- cross account ------------------------------------------------------------------
    Case("cross-both", True, principal=BOB, user_name="bob", identity=[ident(stmt())],
         resource=res(rstmt({"AWS": BOB}))),
    Case("cross-identity-only", False, principal=BOB, user_name="bob",
         identity=[ident(stmt())], reason=Reason.NO_RESOURCE_ALLOW),
    Case("cross-resource-only", False, principal=BOB, user_name="bob",
         resource=res(rstmt({"AWS": BOB})), reason=Reason.NO_IDENTITY_ALLOW),
    Case("cross-account-principal-plus-iam", True, principal=BOB, user_name="bob",
         identity=[ident(stmt())], resource=res(rstmt({"AWS": ROOT_B}))),
    Case("cross-account-id-shorthand", True, principal=BOB, user_name="bob",
         identity=[ident(stmt())], resource=res(rstmt({"AWS": B}))),
    Case("cross-account-principal-no-iam", False, principal=BOB, user_name="bob",
         resource=res(rstmt({"AWS": ROOT_B}))),
    Case("cross-root-with-resource", True, principal=ROOT_B, resource=res(rstmt({"AWS": B}))),
    Case("cross-root-without-resource", False, principal=ROOT_B),
    Case("cross-wrong-account-in-resource", False, principal=BOB, user_name="bob",
         identity=[ident(stmt())], resource=res(rstmt({"AWS": ROOT_A}))),
    Case("cross-star-needs-identity", False, principal=BOB, user_name="bob",
         resource=res(rstmt("*"))),
    Case("cross-star-with-identity", True, principal=BOB, user_name="bob",
         identity=[ident(stmt())], resource=res(rstmt("*"))),
    # --- KMS: the key policy is required ------------------------------------------------
    Case("kms-default-policy-delegates", True, action="kms:Encrypt", target=KEY,
         identity=[ident(stmt(action="kms:Encrypt"))], required=True,
         resource=res(rstmt({"AWS": ROOT_A}, action="kms:*"))),
    Case("kms-default-policy-no-iam", False, action="kms:Encrypt", target=KEY, required=True,
         resource=res(rstmt({"AWS": ROOT_A}, action="kms:*")),
         reason=Reason.NO_IDENTITY_ALLOW),
    Case("kms-root-via-default-policy", True, principal=ROOT_A, action="kms:Decrypt",
         target=KEY, required=True, resource=res(rstmt({"AWS": ROOT_A}, action="kms:*"))),
    Case("kms-root-no-key-policy-statement", False, principal=ROOT_A, action="kms:Decrypt",
         target=KEY, required=True, resource=res(rstmt({"AWS": ALICE}, action="kms:*")),
         reason=Reason.NO_RESOURCE_ALLOW),
    Case("kms-iam-alone-not-enough", False, action="kms:Encrypt", target=KEY, required=True,
         identity=[ident(stmt(action="kms:*"))], resource=res(rstmt({"AWS": ALICE},
                                                                     action="kms:Decrypt"))),
    Case("kms-user-named-in-key-policy", True, action="kms:Encrypt", target=KEY,
         required=True, resource=res(rstmt({"AWS": ALICE}, action="kms:Encrypt"))),
    Case("kms-cross-account-both", True, principal=BOB, user_name="bob", action="kms:Decrypt",
         target=KEY, required=True, identity=[ident(stmt(action="kms:Decrypt"))],
         resource=res(rstmt({"AWS": ROOT_B}, action="kms:Decrypt"))),
    Case("kms-service-principal", True, principal="", user_name=None, service="s3.amazonaws.com",
         action="kms:Decrypt", target=KEY, required=True,
         resource=res(rstmt({"Service": "s3.amazonaws.com"}, action="kms:Decrypt"))),
    # --- principal forms ----------------------------------------------------------------
    Case("principal-aws-star", True, resource=res(rstmt({"AWS": "*"}))),
    Case("principal-list", True, resource=res(rstmt({"AWS": [ROOT_B, ALICE]}))),
    Case("principal-service-mismatch", False, principal="", user_name=None,
         service="logging.s3.amazonaws.com",
         resource=res(rstmt({"Service": "s3.amazonaws.com"}))),
    Case("anonymous-public-read", True, principal="", user_name=None,
         resource=res(rstmt("*"))),
    Case("anonymous-needs-star", False, principal="", user_name=None,
         resource=res(rstmt({"AWS": ROOT_A}))),
    Case("notprincipal-deny-others", False, principal=f"arn:aws:iam::{A}:user/carol",
         identity=[ident(stmt())], resource=res({"NotPrincipal": {"AWS": ALICE},
                                                 **stmt("Deny", "s3:*")})),
    Case("notprincipal-deny-spares-listed", True, identity=[ident(stmt())],
         resource=res({"NotPrincipal": {"AWS": ALICE}, **stmt("Deny", "s3:*")})),
    # --- actions and resources ----------------------------------------------------------
    Case("action-wildcard", True, identity=[ident(stmt(action="s3:Get*"))]),
    Case("action-case-insensitive", True, identity=[ident(stmt(action="S3:getobject"))]),
    Case("action-question-mark", True, identity=[ident(stmt(action="s3:GetObjec?"))]),
    Case("action-other-service", False, identity=[ident(stmt(action="kms:*"))]),
    Case("action-star", True, identity=[ident(stmt(action="*"))]),
    Case("notaction-allows-others", True, identity=[ident({"Effect": "Allow",
                                                           "NotAction": "s3:Delete*",
                                                           "Resource": "*"})]),
    Case("notaction-excludes-listed", False, action="s3:DeleteObject",
         identity=[ident({"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": "*"})]),
    Case("notaction-deny", False, action="kms:Decrypt", target=KEY, identity=[
        ident(stmt(action="*")), ident({"Effect": "Deny", "NotAction": "s3:*",
                                        "Resource": "*"})]),
    Case("resource-wildcard", True, identity=[ident(stmt(resource="arn:aws:s3:::bkt/docs/*"))]),
    Case("resource-mismatch", False, identity=[ident(stmt(resource="arn:aws:s3:::bkt/img/*"))]),
    Case("resource-case-sensitive", False,
         identity=[ident(stmt(resource="arn:aws:s3:::BKT/docs/*"))]),
    Case("notresource-allow", True, identity=[ident({"Effect": "Allow", "Action": "s3:*",
                                                     "NotResource": "arn:aws:s3:::secret/*"})]),
    Case("notresource-excluded", False, target="arn:aws:s3:::secret/x",
         identity=[ident({"Effect": "Allow", "Action": "s3:*",
                          "NotResource": "arn:aws:s3:::secret/*"})]),
    # --- policy variables ---------------------------------------------------------------
    Case("var-username-resource", True, target="arn:aws:s3:::bkt/home/alice/f",
         identity=[ident(stmt(resource="arn:aws:s3:::bkt/home/${aws:username}/*"))]),
    Case("var-username-other-home", False, target="arn:aws:s3:::bkt/home/bob/f",
         identity=[ident(stmt(resource="arn:aws:s3:::bkt/home/${aws:username}/*"))]),
    Case("var-literal-in-2008", False, target="arn:aws:s3:::bkt/home/alice/f",
         identity=[ident(stmt(resource="arn:aws:s3:::bkt/home/${aws:username}/*"),
                         version="2008-10-17")]),
    Case("var-not-a-wildcard", False, target="arn:aws:s3:::bkt/home/alice/f",
         user_name="*", identity=[ident(stmt(resource="arn:aws:s3:::bkt/home/${aws:username}"))]),
    Case("var-default-value", True, target="arn:aws:s3:::bkt/team/none/f",
         identity=[ident(stmt(
             resource="arn:aws:s3:::bkt/team/${aws:PrincipalTag/team, 'none'}/*"))]),
    Case("var-missing-no-match", False, target="arn:aws:s3:::bkt/team/x/f",
         identity=[ident(stmt(resource="arn:aws:s3:::bkt/team/${aws:PrincipalTag/team}/*"))]),
    Case("var-in-condition", True, context={"s3:prefix": "home/alice/"},
         identity=[ident(stmt(**cond("StringLike", "s3:prefix", "home/${aws:username}/*")))]),
    Case("var-special-star", True, context={"s3:prefix": "lit*"},
         identity=[ident(stmt(**cond("StringEquals", "s3:prefix", "lit${*}")))]),
    # --- condition operators ------------------------------------------------------------
    cc("string-equals", "StringEquals", "aws:RequestedRegion", "us-east-1",
       {"aws:RequestedRegion": "us-east-1"}, True),
    cc("string-equals-case", "StringEquals", "aws:RequestedRegion", "US-EAST-1",
       {"aws:RequestedRegion": "us-east-1"}, False),
    cc("string-equals-any-of", "StringEquals", "aws:RequestedRegion", ["eu-west-1", "us-east-1"],
       {"aws:RequestedRegion": "us-east-1"}, True),
    cc("string-equals-missing", "StringEquals", "aws:RequestedRegion", "us-east-1", {}, False),
    cc("string-key-case-insensitive", "StringEquals", "AWS:REQUESTEDREGION", "us-east-1",
       {"aws:requestedregion": "us-east-1"}, True),
    cc("string-not-equals", "StringNotEquals", "aws:RequestedRegion", ["eu-west-1", "eu-west-2"],
       {"aws:RequestedRegion": "us-east-1"}, True),
    cc("string-not-equals-hit", "StringNotEquals", "aws:RequestedRegion", ["us-east-1"],
       {"aws:RequestedRegion": "us-east-1"}, False),
    cc("string-not-equals-missing", "StringNotEquals", "aws:RequestedRegion", "x", {}, True),
    cc("string-equals-ignore-case", "StringEqualsIgnoreCase", "s3:x-amz-acl", "PRIVATE",
       {"s3:x-amz-acl": "private"}, True),
    cc("string-not-equals-ignore-case", "StringNotEqualsIgnoreCase", "s3:x-amz-acl", "PRIVATE",
       {"s3:x-amz-acl": "private"}, False),
    cc("string-like", "StringLike", "s3:prefix", "docs/*", {"s3:prefix": "docs/2024/"}, True),
    cc("string-like-question", "StringLike", "s3:prefix", "doc?", {"s3:prefix": "docs"}, True),
    cc("string-like-miss", "StringLike", "s3:prefix", "docs/*", {"s3:prefix": "img/"}, False),
    cc("string-not-like", "StringNotLike", "s3:prefix", "secret/*", {"s3:prefix": "docs/"}, True),
    cc("string-equals-ifexists-missing", "StringEqualsIfExists", "s3:x-amz-server-side-encryption",
       "aws:kms", {}, True),
    cc("string-equals-ifexists-present", "StringEqualsIfExists",
       "s3:x-amz-server-side-encryption", "aws:kms",
       {"s3:x-amz-server-side-encryption": "AES256"}, False),
    cc("numeric-less-than", "NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": "5"}, True),
    cc("numeric-less-than-no", "NumericLessThan", "s3:max-keys", "10", {"s3:max-keys": 10}, False),
    cc("numeric-le", "NumericLessThanEquals", "s3:max-keys", 10, {"s3:max-keys": 10}, True),
    cc("numeric-gt", "NumericGreaterThan", "s3:max-keys", "10", {"s3:max-keys": "11"}, True),
    cc("numeric-ge", "NumericGreaterThanEquals", "s3:max-keys", "10", {"s3:max-keys": "9"}, False),
    cc("numeric-equals", "NumericEquals", "s3:max-keys", "10", {"s3:max-keys": "10.0"}, True),
    cc("numeric-not-equals", "NumericNotEquals", "s3:max-keys", "10", {"s3:max-keys": "3"}, True),
    cc("numeric-garbage", "NumericEquals", "s3:max-keys", "10", {"s3:max-keys": "ten"}, False),
    cc("date-less-than", "DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", {}, True),
    cc("date-greater-than", "DateGreaterThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", {},
       False),
    cc("date-epoch", "DateGreaterThanEquals", "aws:CurrentTime", "1700000000", {}, True),
    cc("date-equals", "DateEquals", "aws:CurrentTime", "2024-06-01T12:00:00+00:00", {}, True),
    cc("date-not-equals", "DateNotEquals", "aws:CurrentTime", "2024-06-01T12:00:00Z", {}, False),
    cc("bool-true", "Bool", "aws:SecureTransport", "true", {"aws:SecureTransport": True}, True),
    cc("bool-false", "Bool", "aws:SecureTransport", "true", {"aws:SecureTransport": False}, False),
    cc("bool-policy-bool", "Bool", "aws:SecureTransport", False,
       {"aws:SecureTransport": False}, True),
    cc("bool-ifexists-missing", "BoolIfExists", "aws:SecureTransport", "true", {}, True),
    cc("ip-in-range", "IpAddress", "aws:SourceIp", "203.0.113.0/24",
       {"aws:SourceIp": "203.0.113.7"}, True),
    cc("ip-out-of-range", "IpAddress", "aws:SourceIp", "203.0.113.0/24",
       {"aws:SourceIp": "198.51.100.7"}, False),
    cc("ip-v6", "IpAddress", "aws:SourceIp", "2001:db8::/32", {"aws:SourceIp": "2001:db8::1"},
       True),
    cc("not-ip", "NotIpAddress", "aws:SourceIp", ["10.0.0.0/8", "192.168.0.0/16"],
       {"aws:SourceIp": "203.0.113.7"}, True),
    cc("not-ip-hit", "NotIpAddress", "aws:SourceIp", "10.0.0.0/8", {"aws:SourceIp": "10.1.2.3"},
       False),
    cc("arn-like", "ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{A}:user/*", {}, True),
    cc("arn-like-segment", "ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:user/ali*", {}, True),
    cc("arn-like-no-cross-segment", "ArnLike", "aws:PrincipalArn", "arn:aws:*:user/alice", {},
       False),
    cc("arn-equals", "ArnEquals", "aws:PrincipalArn", ALICE, {}, True),
    cc("arn-not-like", "ArnNotLike", "aws:PrincipalArn", f"arn:aws:iam::{B}:*", {}, True),
    cc("arn-not-equals-hit", "ArnNotEquals", "aws:PrincipalArn", ALICE, {}, False),
    cc("null-true-missing", "Null", "s3:x-amz-server-side-encryption", "true", {}, True),
    cc("null-true-present", "Null", "s3:x-amz-server-side-encryption", "true",
       {"s3:x-amz-server-side-encryption": "AES256"}, False),
    cc("null-false-present", "Null", "kms:EncryptionContext:dept", "false",
       {"kms:EncryptionContext:dept": "it"}, True),
    cc("for-any-value-hit", "ForAnyValue:StringEquals", "kms:EncryptionContextKeys", ["dept", "x"],
       {"kms:EncryptionContextKeys": ["dept", "owner"]}, True),
    cc("for-any-value-missing", "ForAnyValue:StringEquals", "kms:EncryptionContextKeys", "dept",
       {}, False),
    cc("for-all-values-subset", "ForAllValues:StringEquals", "kms:EncryptionContextKeys",
       ["dept", "owner", "project"], {"kms:EncryptionContextKeys": ["dept", "owner"]}, True),
    cc("for-all-values-extra", "ForAllValues:StringEquals", "kms:EncryptionContextKeys",
       ["dept"], {"kms:EncryptionContextKeys": ["dept", "owner"]}, False),
    cc("for-all-values-missing", "ForAllValues:StringEquals", "kms:EncryptionContextKeys",
       ["dept"], {}, True),
    cc("for-all-values-like", "ForAllValues:StringLike", "kms:GrantOperations",
       ["Decrypt", "Encrypt*"], {"kms:GrantOperations": ["Decrypt", "EncryptX"]}, True),
    cc("for-any-value-not-equals", "ForAnyValue:StringNotEquals", "kms:EncryptionContextKeys",
       "dept", {"kms:EncryptionContextKeys": ["dept", "owner"]}, True),
    cc("multivalued-unqualified", "StringEquals", "kms:GrantOperations", "Decrypt",
       {"kms:GrantOperations": ["Encrypt", "Decrypt"]}, True),
    cc("encryption-context", "StringEquals", "kms:EncryptionContext:dept", "it",
       {"kms:EncryptionContext:dept": "it"}, True, action="kms:Decrypt", target=KEY),
    cc("via-service", "StringEquals", "kms:ViaService", "s3.us-east-1.amazonaws.com",
       {"kms:ViaService": "s3.us-east-1.amazonaws.com"}, True, action="kms:Decrypt", target=KEY),
    cc("caller-account", "StringEquals", "kms:CallerAccount", A, {"kms:CallerAccount": A}, True),
    cc("principal-account-implicit", "StringEquals", "aws:PrincipalAccount", A, {}, True),
    cc("userid-implicit", "StringEquals", "aws:userid", "AIDAALICE", {}, True),
    cc("username-implicit", "StringEquals", "aws:username", "alice", {}, True),
    Case("conditions-and", False, context={"aws:SecureTransport": True},
         identity=[ident(stmt(Condition={"Bool": {"aws:SecureTransport": "true"},
                                         "StringEquals": {"aws:RequestedRegion": "eu-west-1"}}))]),
    Case("conditions-and-keys", True,
         context={"aws:SecureTransport": True, "aws:RequestedRegion": "eu-west-1"},
         identity=[ident(stmt(Condition={"Bool": {"aws:SecureTransport": "true"},
                                         "StringEquals": {"aws:RequestedRegion": "eu-west-1"}}))]),
    Case("deny-insecure-transport", False, context={"aws:SecureTransport": False},
         resource=res(rstmt({"AWS": ALICE}), rstmt("*", "Deny", "s3:*",
                                                   **cond("Bool", "aws:SecureTransport", "false"))),
         reason=Reason.EXPLICIT_DENY_RESOURCE),
    Case("deny-insecure-transport-ok-over-tls", True, context={"aws:SecureTransport": True},
         resource=res(rstmt({"AWS": ALICE}),
                      rstmt("*", "Deny", "s3:*", **cond("Bool", "aws:SecureTransport", "false")))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_evaluate(case: Case):
    d = evaluate(req(case), case.identity, case.resource, resource_account=case.account,
                 resource_policy_required=case.required, clock=lambda: NOW)
    assert d.allowed is case.allowed, d.explain()
    if case.reason:
        assert d.reason == case.reason, d.explain()


def test_there_are_enough_cases():
    assert len(CASES) >= 60


def test_decision_names_the_statement():
    p = ident({"Sid": "ReadDocs", **stmt()}, name="docs-reader")
    d = evaluate(AuthzRequest(ALICE, "s3:GetObject", OBJ), [p], None, resource_account=A)
    assert d == Decision(True, Reason.IDENTITY_ALLOW, ("docs-reader", "ReadDocs"))
    assert "ReadDocs" in d.explain() and "docs-reader" in d.explain()
    deny = res({"Sid": "NoTLSNoData", **rstmt("*", "Deny", "s3:*",
                                              **cond("Bool", "aws:SecureTransport", "false"))},
               name="bucket-policy")
    r = AuthzRequest(ALICE, "s3:GetObject", OBJ, context={"aws:SecureTransport": False})
    d = evaluate(r, [p], deny, resource_account=A)
    assert not d and d.statement == ("bucket-policy", "NoTLSNoData")
    assert d.aws_message(r).endswith("with an explicit deny in a resource-based policy")


def test_denial_messages():
    r = AuthzRequest(BOB, "s3:GetObject", OBJ)
    d = evaluate(r, [ident(stmt())], None, resource_account=A)
    assert d.aws_message(r) == (f"User: {BOB} is not authorized to perform: s3:GetObject on "
                                f"resource: {OBJ} because no resource-based policy allows the "
                                "s3:GetObject action")


def test_direct_key_policy_statement_outranks_delegation():
    kp = res(rstmt({"AWS": ROOT_A}, action="kms:*", Sid="Enable IAM"),
             rstmt({"AWS": ALICE}, action="kms:Decrypt", Sid="Alice"))
    d = evaluate(AuthzRequest(ALICE, "kms:Decrypt", KEY), [], kp, resource_account=A,
                 resource_policy_required=True)
    assert d.allowed and d.statement == ("resource-policy", "Alice")


# -- NotPrincipal naming an account (issue 11, finding 9) ---------------------------------
# [IAM UG, "AWS JSON policy elements: NotPrincipal": listing the account ARN exempts the
# account, not the users in it; a user is spared only when listed itself]

def _np_deny(*listed):
    return res({"NotPrincipal": {"AWS": list(listed)}, **stmt("Deny", "s3:*")})


@pytest.mark.parametrize("principal,listed,allowed", [
    (ALICE, [ROOT_A], False),
    (ALICE, [A], False),
    (ROOT_A, [ROOT_A], True),
    (ROOT_A, [A], True),
    (ALICE, [ROOT_A, ALICE], True),
    (BOB, [ROOT_A, ALICE], False),
    (ROOT_B, [ROOT_A], False),
])
def test_notprincipal_account_exempts_only_the_root(principal, listed, allowed):
    request = AuthzRequest(principal_arn=principal, action="s3:GetObject", resource=OBJ)
    d = evaluate(request, [ident(stmt())], _np_deny(*listed), resource_account=A,
                 clock=lambda: NOW)
    assert d.allowed is allowed, d.explain()
    if not allowed:
        assert d.reason == Reason.EXPLICIT_DENY_RESOURCE or principal == ROOT_B


def test_legacy_statements_are_read_closed():
    """Documents stored before the save-time rules: an Allow with NotPrincipal opens nothing,
    a Deny with a wildcard principal ARN denies whom it names."""
    legacy = parse_policy({"Version": "2012-10-17", "Statement": [
        {"NotPrincipal": {"AWS": BOB}, **stmt("Allow")}]}, kind="resource")
    request = AuthzRequest(principal_arn=ALICE, action="s3:GetObject", resource=OBJ)
    assert not evaluate(request, [], legacy, resource_account=A, clock=lambda: NOW).allowed
    deny = parse_policy({"Version": "2012-10-17", "Statement": [
        {"Principal": {"AWS": f"arn:aws:iam::{A}:user/ali*"}, **stmt("Deny")}]},
        kind="resource")
    d = evaluate(request, [ident(stmt())], deny, resource_account=A, clock=lambda: NOW)
    assert not d.allowed and d.reason == Reason.EXPLICIT_DENY_RESOURCE
    bob = AuthzRequest(principal_arn=BOB, action="s3:GetObject", resource=OBJ)
    assert evaluate(bob, [ident(stmt())], deny, resource_account=B, clock=lambda: NOW).allowed
