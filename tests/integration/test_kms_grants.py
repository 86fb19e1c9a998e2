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


# -- delegation through a grant (issue 11 finding 4) ----------------------------------------------

CAROL = Caller(f"arn:aws:iam::{ACCT}:user/carol", ACCT)


def test_child_grant_carries_the_parents_constraint(kms):
    """DG/create-grant-overview#grant-creategrant: a child grant's constraints must be equally
    or more restrictive; else AccessDeniedException and no grant."""
    k = new_key(kms)
    kms.create_grant(ROOT, k, ALICE.principal_arn, ["CreateGrant", "Decrypt"],
                     constraints={"EncryptionContextSubset": {"tenant": "a"}})
    blob = kms.encrypt(ROOT, k, b"b's", encryption_context={"tenant": "b"})["CiphertextBlob"]
    with pytest.raises(AccessDeniedException):
        kms.create_grant(ALICE, k, BOB.principal_arn, ["Decrypt"])
    with pytest.raises(AccessDeniedException):
        kms.decrypt(BOB, blob, encryption_context={"tenant": "b"})
    assert [g["GranteePrincipal"] for g in kms.list_grants(ROOT, k)["Grants"]] == [
        ALICE.principal_arn]
    kms.create_grant(ALICE, k, BOB.principal_arn, ["Decrypt"],
                     constraints={"EncryptionContextEquals": {"tenant": "a", "x": "1"}})
    with pytest.raises(AccessDeniedException):
        kms.decrypt(BOB, blob, encryption_context={"tenant": "b"})


def test_delegation_picks_a_parent_that_fits(kms, sink):
    """With two grants holding CreateGrant, the one whose operations and constraints cover the
    child authorizes it (and the audit record names that one)."""
    k = new_key(kms)
    kms.create_grant(ROOT, k, ALICE.principal_arn, ["CreateGrant", "Encrypt"],
                     constraints={"EncryptionContextEquals": {"t": "1"}})
    wide = kms.create_grant(ROOT, k, ALICE.principal_arn, ["CreateGrant", "Encrypt", "Decrypt"],
                            constraints={"EncryptionContextSubset": {"t": "1"}})["GrantId"]
    kms.create_grant(ALICE, k, BOB.principal_arn, ["Decrypt"],
                     constraints={"EncryptionContextSubset": {"t": "1", "u": "2"}})
    made = [r for r in sink.records if r["eventName"] == "CreateGrant"][-1]
    assert made["authorizationDecision"]["grantId"] == wide
    with pytest.raises(AccessDeniedException):      # neither parent allows it unconstrained
        kms.create_grant(ALICE, k, CAROL.principal_arn, ["Encrypt"])
    denied = [r for r in sink.records if r["eventName"] == "CreateGrant"][-1]
    assert denied["errorCode"] == "AccessDeniedException"
    assert denied["authorizationDecision"]["allowed"] is False


def test_constraint_keys_are_case_insensitive_values_are_not(kms):
    """API GrantConstraints: "in a grant constraint, the key in each key-value pair is not case
    sensitive, but the value is case sensitive"."""
    k = new_key(kms)
    kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"],
                     constraints={"EncryptionContextSubset": {"Dept": "IT"}})
    kms.create_grant(ROOT, k, BOB.principal_arn, ["Encrypt"],
                     constraints={"EncryptionContextEquals": {"Dept": "IT"}})
    kms.encrypt(ALICE, k, b"x", encryption_context={"dept": "IT", "other": "1"})
    kms.encrypt(BOB, k, b"x", encryption_context={"DEPT": "IT"})
    for caller in (ALICE, BOB):
        with pytest.raises(AccessDeniedException):
            kms.encrypt(caller, k, b"x", encryption_context={"Dept": "it"})


# -- ListRetirableGrants across accounts (issue 11 finding 10) ------------------------------------

def test_list_retirable_grants_only_for_own_accounts_principals(kms):
    k = new_key(kms)
    kms.create_grant(ROOT, k, ALICE.principal_arn, ["Encrypt"],
                     retiring_principal=BOB.principal_arn)
    xroot = Caller(f"arn:aws:iam::{OTHER}:root", OTHER)
    for who in (xroot, XUSER):
        with pytest.raises(AccessDeniedException):
            kms.list_retirable_grants(who, BOB.principal_arn)
    with pytest.raises(AccessDeniedException):      # a service principal is in no account
        kms.list_retirable_grants(ROOT, "s3.amazonaws.com")
    assert len(kms.list_retirable_grants(ROOT, BOB.principal_arn)["Grants"]) == 1


def test_grant_to_an_account_root_is_not_passed_on_to_its_users(kms):
    """Decision (AWS documents no delegation through a grant, unlike the key policy's root
    principal): a grant whose grantee is an account allows that account's root only; its IAM
    users, even with kms:* in their identity policies, get nothing from it."""
    k = new_key(kms)
    kms.create_grant(ROOT, k, OTHER, ["Encrypt"])          # "444455556666" -> its root ARN
    assert kms.list_grants(ROOT, k)["Grants"][0]["GranteePrincipal"] == (
        f"arn:aws:iam::{OTHER}:root")
    kms.encrypt(Caller(f"arn:aws:iam::{OTHER}:root", OTHER), k, b"x")
    with pytest.raises(AccessDeniedException):
        kms.encrypt(Caller(XUSER.principal_arn, OTHER, identity_policies=KMS_ADMIN), k, b"x")
