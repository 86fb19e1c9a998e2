"""Grants in the KMS library: create (Name idempotency, tokens, constraints, validation), list,
retire, revoke, enforcement on every call, persistence and the audit record."""
from __future__ import annotations

import json

import pytest

from kms.audit import MemorySink
from kms.errors import (AccessDeniedException, InvalidGrantIdException,
                        InvalidGrantTokenException, KMSInvalidStateException,
                        NotFoundException, ValidationException)
from kms.model import Caller
from kms.service import KMS
from tests.kms_policies import KMS_ADMIN

ACCT, OTHER = "111122223333", "444455556666"
ROOT = Caller(f"arn:aws:iam::{ACCT}:root", ACCT)
ALICE = Caller(f"arn:aws:iam::{ACCT}:user/alice", ACCT)              # no identity policies
BOB = Caller(f"arn:aws:iam::{ACCT}:user/bob", ACCT)
ADMIN = Caller(f"arn:aws:iam::{ACCT}:user/admin", ACCT, identity_policies=KMS_ADMIN)
XUSER = Caller(f"arn:aws:iam::{OTHER}:user/x", OTHER)


@pytest.fixture
def sink():
    return MemorySink()


@pytest.fixture
def kms(tmp_path, sink):
    k = KMS.open(tmp_path, audit=sink)
    yield k
    k.close()


def new_key(kms, **kw) -> str:
    return kms.create_key(ROOT, **kw)["KeyMetadata"]["Arn"]


def test_grant_allows_listed_operations_only(kms):
    k = new_key(kms)
    with pytest.raises(AccessDeniedException):
        kms.encrypt(ALICE, k, b"x")
    g = kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt", "DescribeKey"])
    blob = kms.encrypt(ALICE, k, b"x", grant_tokens=[g["GrantToken"]])["CiphertextBlob"]
    kms.describe_key(ALICE, k)
    with pytest.raises(AccessDeniedException):
        kms.decrypt(ALICE, blob)
    with pytest.raises(AccessDeniedException):      # another principal
        kms.encrypt(BOB, k, b"x")


def test_constraints(kms):
    k = new_key(kms)
    kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"],
                     constraints={"EncryptionContextEquals": {"a": "1"}})
    kms.create_grant(ROOT, k, BOB.principal_arn, ["Encrypt", "GenerateDataKey"],
                     constraints={"EncryptionContextSubset": {"a": "1"}})
    kms.encrypt(ALICE, k, b"x", encryption_context={"a": "1"})
    for ctx in ({}, {"a": "2"}, {"a": "1", "b": "2"}):
        with pytest.raises(AccessDeniedException):
            kms.encrypt(ALICE, k, b"x", encryption_context=ctx)
    kms.encrypt(BOB, k, b"x", encryption_context={"a": "1", "b": "2"})
    kms.generate_data_key(BOB, k, key_spec="AES_256", encryption_context={"a": "1"})
    with pytest.raises(AccessDeniedException):
        kms.encrypt(BOB, k, b"x", encryption_context={"b": "2"})


def test_name_idempotency_and_listing(kms):
    k = new_key(kms)
    a = kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"], name="n1")
    b = kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"], name="n1")
    assert a["GrantId"] == b["GrantId"] and a["GrantToken"] != b["GrantToken"]
    c = kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt", "Decrypt"], name="n1")
    assert c["GrantId"] != a["GrantId"]
    listed = kms.list_grants(ROOT, k)
    assert [g["GrantId"] for g in listed["Grants"]] == [a["GrantId"], c["GrantId"]]
    page = kms.list_grants(ROOT, k, limit=1)
    assert page["Truncated"] and len(page["Grants"]) == 1
    rest = kms.list_grants(ROOT, k, limit=1, marker=page["NextMarker"])
    assert rest["Grants"][0]["GrantId"] == c["GrantId"] and not rest["Truncated"]
    assert kms.list_grants(ROOT, k, grant_id=c["GrantId"])["Grants"][0]["Operations"] == [
        "Encrypt", "Decrypt"]
    with pytest.raises(AccessDeniedException):      # ListGrants is a key-policy permission
        kms.list_grants(ALICE, k)


def test_validation(kms):
    k = new_key(kms)
    for ops in ([], ["Fly"], "Encrypt"):
        with pytest.raises(ValidationException):
            kms.create_grant(ROOT, k, ALICE.principal_arn, ops)
    with pytest.raises(ValidationException):
        kms.create_grant(ROOT, k, "alice", ["Encrypt"])
    with pytest.raises(ValidationException):
        kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"], name="bad name")
    hmac = new_key(kms, key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC")
    with pytest.raises(ValidationException):
        kms.create_grant(ROOT, hmac, ALICE.principal_arn, ["Encrypt"])
    kms.create_grant(ROOT, hmac, ALICE.principal_arn, ["GenerateMac", "VerifyMac"])
    with pytest.raises(InvalidGrantTokenException):
        kms.encrypt(ROOT, k, b"x", grant_tokens=["garbage"])
    kms.schedule_key_deletion(ROOT, k, pending_window_in_days=7)
    with pytest.raises(KMSInvalidStateException):
        kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"])


def test_retire_and_revoke(kms):
    k = new_key(kms)
    g1 = kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"],
                          retiring_principal=BOB.principal_arn)
    assert [g["GrantId"] for g in kms.list_retirable_grants(ROOT, BOB.principal_arn)[
        "Grants"]] == [g1["GrantId"]]
    with pytest.raises(AccessDeniedException):      # ListRetirableGrants is an IAM permission
        kms.list_retirable_grants(BOB, BOB.principal_arn)
    with pytest.raises(AccessDeniedException):      # the grantee has no RetireGrant operation
        kms.retire_grant(ALICE, grant_token=g1["GrantToken"])
    kms.retire_grant(BOB, grant_token=g1["GrantToken"])
    with pytest.raises(NotFoundException):
        kms.retire_grant(BOB, grant_token=g1["GrantToken"])
    g2 = kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"])
    with pytest.raises(AccessDeniedException):
        kms.revoke_grant(ALICE, k, g2["GrantId"])
    kms.revoke_grant(ADMIN, k, g2["GrantId"])
    with pytest.raises(AccessDeniedException):
        kms.encrypt(ALICE, k, b"x")
    with pytest.raises(InvalidGrantIdException):
        kms.revoke_grant(ROOT, k, "not-a-grant")
    other = new_key(kms)
    g3 = kms.create_grant(ROOT, other, ALICE.principal_arn, ["Encrypt"])
    with pytest.raises(InvalidGrantIdException):    # a grant of another key
        kms.retire_grant(ROOT, key_id=k, grant_id=g3["GrantId"])
    with pytest.raises(ValidationException):
        kms.retire_grant(ROOT)


def test_grant_delegation_cannot_widen(kms):
    k = new_key(kms)
    kms.create_grant(ROOT, k, ALICE.principal_arn, ["CreateGrant", "Encrypt"])
    kms.create_grant(ALICE, k, BOB.principal_arn, ["Encrypt"])
    kms.encrypt(BOB, k, b"x")
    with pytest.raises(AccessDeniedException):
        kms.create_grant(ALICE, k, BOB.principal_arn, ["Encrypt", "Decrypt"])


def test_cross_account_grantee(kms):
    k = new_key(kms)
    kms.create_grant(ROOT, k, XUSER.principal_arn, ["Encrypt"])
    kms.encrypt(XUSER, k, b"x")
    with pytest.raises(AccessDeniedException):
        kms.decrypt(XUSER, kms.encrypt(ROOT, k, b"x")["CiphertextBlob"])


def test_grants_survive_reopen_and_go_with_the_key(tmp_path):
    sink = MemorySink()
    with KMS.open(tmp_path, audit=sink) as kms:
        k = new_key(kms)
        kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"])
    with KMS.open(tmp_path, audit=sink) as kms:
        kms.encrypt(ALICE, k, b"x")
        assert len(kms.list_grants(ROOT, k)["Grants"]) == 1


def test_audit_names_the_grant_and_hides_the_token(kms, sink):
    k = new_key(kms)
    g = kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"])
    kms.encrypt(ALICE, k, b"x", grant_tokens=[g["GrantToken"]])
    created = [r for r in sink.records if r["eventName"] == "CreateGrant"][-1]
    assert created["responseElements"] == {"grantId": g["GrantId"]}
    used = [r for r in sink.records if r["eventName"] == "Encrypt"][-1]
    assert used["authorizationDecision"] == {"allowed": True, "reason": "grant-allow",
                                             "grantId": g["GrantId"]}
    assert g["GrantToken"] not in json.dumps(sink.records)
    with pytest.raises(AccessDeniedException):
        kms.decrypt(ALICE, kms.encrypt(ROOT, k, b"x")["CiphertextBlob"])
    denied = [r for r in sink.records if r["eventName"] == "Decrypt"][-1]
    assert denied["errorCode"] == "AccessDeniedException"
    assert denied["authorizationDecision"] == {"allowed": False, "reason": "no-identity-allow"}
