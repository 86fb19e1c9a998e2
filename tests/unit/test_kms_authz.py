"""kms.authz: key policy + identity policies for KMS keys, decided by kms.iam.evaluate."""
from __future__ import annotations

import json

import pytest

from kms.authz import (authorize, authorize_account, aws_managed_key_policy, decision_record,
                       default_key_policy, request_context)
from kms.errors import AccessDeniedException
from kms.iam import parse_policy
from kms.model import (Caller, Key, KeyManager, KeyMetadata, KeySpec, KeyState, KeyUsage,
                       Origin)

ACCT, OTHER = "111122223333", "444455556666"
ROOT = Caller(f"arn:aws:iam::{ACCT}:root", ACCT)
ALLOW_ALL = parse_policy({"Version": "2012-10-17", "Statement": [
    {"Sid": "all", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}, name="all")


def user(name="alice", account=ACCT, *statements, **kw) -> Caller:
    pols = (parse_policy({"Version": "2012-10-17", "Statement": list(statements)},
                         name="p"),) if statements else ()
    return Caller(f"arn:aws:iam::{account}:user/{name}", account, identity_policies=pols,
                  user_name=name, **kw)


def key(policy: str | None = None, account=ACCT, manager=KeyManager.CUSTOMER) -> Key:
    arn = f"arn:aws:kms:us-east-1:{account}:key/k1"
    meta = KeyMetadata(account_id=account, key_id="k1", arn=arn, creation_date=0.0,
                       description="", key_usage=KeyUsage.ENCRYPT_DECRYPT,
                       key_state=KeyState.ENABLED, origin=Origin.AWS_KMS, key_manager=manager,
                       key_spec=KeySpec.SYMMETRIC_DEFAULT)
    return Key(metadata=meta, policy=policy or default_key_policy(account), tags=(),
               current_version=1)


def kp(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_root_through_default_policy():
    d = authorize(ROOT, "Encrypt", key())
    assert d.allowed and d.statement == ("key policy", "Enable IAM User Permissions")


def test_user_needs_identity_policy_with_default_policy():
    with pytest.raises(AccessDeniedException, match="no identity-based policy allows "
                                                    "the kms:Encrypt action"):
        authorize(user(), "Encrypt", key())
    d = authorize(user("alice", ACCT, {"Effect": "Allow", "Action": "kms:Encrypt",
                                       "Resource": "*"}), "Encrypt", key())
    assert d.reason == "identity-allow"


def test_policy_without_root_denies_root():
    k = key(kp({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCT}:user/bob"},
                "Action": "kms:*", "Resource": "*"}))
    with pytest.raises(AccessDeniedException) as exc:
        authorize(ROOT, "Encrypt", k)
    assert exc.value.decision.reason == "no-resource-allow"


def test_explicit_deny_in_key_policy_message():
    k = key(kp({"Sid": "r", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCT}:root"},
                "Action": "kms:*", "Resource": "*"},
               {"Sid": "d", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt",
                "Resource": "*"}))
    with pytest.raises(AccessDeniedException, match="explicit deny in a resource-based policy"):
        authorize(ROOT, "Decrypt", k)


def test_encryption_context_condition_keys():
    u = user("alice", ACCT, {"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                             "Condition": {"StringEquals": {"kms:EncryptionContext:Dept": "eng"},
                                           "ForAllValues:StringEquals": {
                                               "kms:EncryptionContextKeys": ["dept", "x"]}}})
    assert authorize(u, "Encrypt", key(), {"dept": "eng"})
    with pytest.raises(AccessDeniedException):
        authorize(u, "Encrypt", key(), {"dept": "eng", "y": "1"})
    with pytest.raises(AccessDeniedException):
        authorize(u, "Encrypt", key(), {"dept": "ENG"})


def test_cross_account_needs_both():
    k = key(kp({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
                "Action": "kms:*", "Resource": "*"}))
    with pytest.raises(AccessDeniedException):
        authorize(user("m", OTHER), "Encrypt", k)
    assert authorize(replace_pols(user("m", OTHER), ALLOW_ALL), "Encrypt", k)
    with pytest.raises(AccessDeniedException):      # default policy: the other account is out
        authorize(replace_pols(user("m", OTHER), ALLOW_ALL), "Encrypt", key())


def replace_pols(c: Caller, *pols) -> Caller:
    from dataclasses import replace
    return replace(c, identity_policies=tuple(pols))


def test_aws_managed_key_via_service_only():
    k = key(aws_managed_key_policy(ACCT, "s3", "us-east-1"), manager=KeyManager.AWS)
    with pytest.raises(AccessDeniedException):
        authorize(ROOT, "Encrypt", k)
    from dataclasses import replace
    assert authorize(replace(ROOT, via_service="s3.us-east-1.amazonaws.com"), "Encrypt", k)
    assert authorize(replace(user(), via_service="s3.us-east-1.amazonaws.com"),
                     "GenerateDataKey", k)
    assert authorize(ROOT, "DescribeKey", k)
    other = Caller(f"arn:aws:iam::{OTHER}:root", OTHER, via_service="s3.us-east-1.amazonaws.com")
    with pytest.raises(AccessDeniedException):
        authorize(other, "Decrypt", k)


def test_account_level_operations():
    assert authorize_account(ROOT, "ListKeys")
    with pytest.raises(AccessDeniedException):
        authorize_account(user(), "ListKeys")
    assert authorize_account(replace_pols(user(), ALLOW_ALL), "CreateKey")


def test_request_context_keys():
    c = Caller(f"arn:aws:iam::{ACCT}:user/a", ACCT, source_ip="10.1.2.3", secure_transport=True,
               via_service="s3.us-east-1.amazonaws.com", requested_region="us-east-1")
    ctx = request_context(c, key(), {"a": "1"}, {"kms:GrantOperations": ["Encrypt"]})
    assert ctx["aws:SourceIp"] == "10.1.2.3" and ctx["aws:SecureTransport"] is True
    assert ctx["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    assert ctx["kms:CallerAccount"] == ACCT and ctx["aws:RequestedRegion"] == "us-east-1"
    assert ctx["kms:KeySpec"] == "SYMMETRIC_DEFAULT" and ctx["kms:KeyUsage"] == "ENCRYPT_DECRYPT"
    assert ctx["kms:EncryptionContext:a"] == "1" and ctx["kms:EncryptionContextKeys"] == ["a"]
    assert ctx["kms:GrantOperations"] == ["Encrypt"]


def test_decision_record():
    d = authorize(ROOT, "Encrypt", key())
    assert decision_record(d) == {"allowed": True, "reason": "resource-allow",
                                  "policy": "key policy",
                                  "statementSid": "Enable IAM User Permissions"}
    assert decision_record(None, grant_id="g") == {"allowed": True, "reason": "grant-allow",
                                                   "grantId": "g"}
    assert decision_record(None) is None


def test_unparsable_stored_policy_allows_nothing():
    k = key('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", '
            '"Action": "kms:*", "Resource": "*", "Condition": {"Bogus": {"a:b": "c"}}}]}')
    with pytest.raises(AccessDeniedException):
        authorize(ROOT, "Encrypt", k)
