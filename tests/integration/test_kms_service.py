"""KMS service on real SQLite and a real data dir: lifecycle, states, aliases, rotation,
cross-account refusal, scheduled deletion with an injected clock."""
from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from kms import ciphertext as ct
from kms.audit import MemorySink
from kms.errors import (AccessDeniedException, AlreadyExistsException, DisabledException,
                        IncorrectKeyException, InvalidAliasNameException,
                        InvalidCiphertextException, InvalidKeyUsageException,
                        KMSInternalException, KMSInvalidStateException, LimitExceededException,
                        MalformedPolicyDocumentException, NotFoundException, TagException,
                        UnsupportedOperationException, ValidationException)
from kms.model import Caller
from tests.kms_policies import KMS_ADMIN
from kms.service import KMS

ACCT, OTHER = "111122223333", "444455556666"
ALICE = Caller(f"arn:aws:iam::{ACCT}:user/alice", ACCT, source_ip="192.0.2.1",
               user_agent="pytest", request_id="req-1", access_key_id="AKIAALICE",
               identity_policies=KMS_ADMIN)
BOB = Caller(f"arn:aws:iam::{ACCT}:user/bob", ACCT, identity_policies=KMS_ADMIN)
MALLORY = Caller(f"arn:aws:iam::{OTHER}:user/mallory", OTHER, identity_policies=KMS_ADMIN)
S3 = replace(ALICE, via_service="s3.us-east-1.amazonaws.com")
CTX = {"aws:s3:arn": "arn:aws:s3:::bucket/key"}
T0 = 1_700_000_000.0
DAY = 86400.0




def new_key(kms: KMS, caller: Caller = ALICE, **kw) -> dict:
    return kms.create_key(caller, **kw)["KeyMetadata"]


# -- create / describe -------------------------------------------------------------------------

def test_create_and_describe(kms):
    md = new_key(kms, description="app key", tags=[{"TagKey": "team", "TagValue": "s3"}])
    assert md["Arn"] == f"arn:aws:kms:us-east-1:{ACCT}:key/{md['KeyId']}"
    assert len(md["KeyId"]) == 36
    assert md | {} == {
        "AWSAccountId": ACCT, "KeyId": md["KeyId"], "Arn": md["Arn"], "CreationDate": T0,
        "Enabled": True, "Description": "app key", "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": "Enabled", "Origin": "AWS_KMS", "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT", "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": False}
    assert kms.describe_key(ALICE, md["KeyId"])["KeyMetadata"] == md
    assert kms.describe_key(BOB, md["Arn"])["KeyMetadata"] == md


@pytest.mark.parametrize("kw,err", [
    ({"key_usage": "SIGN_VERIFY"}, ValidationException),
    ({"key_usage": "NOPE"}, ValidationException),
    ({"key_spec": "ML_DSA_44", "key_usage": "SIGN_VERIFY"}, UnsupportedOperationException),
    ({"key_spec": "AES"}, ValidationException),
    ({"origin": "AWS_CLOUDHSM"}, UnsupportedOperationException),
    ({"description": "x" * 8193}, ValidationException),
    ({"policy": "{not json"}, MalformedPolicyDocumentException),
    ({"policy": '{"Statement": []' + " " * 32768 + "}"}, LimitExceededException),
    ({"tags": [{"TagKey": "", "TagValue": "v"}]}, TagException),
    ({"tags": [{"TagKey": "a", "TagValue": "v"}, {"TagKey": "a", "TagValue": "w"}]},
     TagException),
    ({"multi_region": True, "origin": "EXTERNAL"}, UnsupportedOperationException),
])
def test_create_key_validation(kms, kw, err):
    with pytest.raises(err):
        kms.create_key(ALICE, **kw)


def test_describe_unknown(kms):
    for ref in ("1234abcd-12ab-34cd-56ef-1234567890ab", "alias/none",
                f"arn:aws:kms:us-east-1:{ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                f"arn:aws:kms:eu-west-1:{ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "arn:aws:kms:bad", "not a key id!"):
        with pytest.raises(NotFoundException):
            kms.describe_key(ALICE, ref)
    with pytest.raises(ValidationException):
        kms.describe_key(ALICE, "")


def test_list_keys_paginates_by_account(kms):
    ids = sorted(new_key(kms)["KeyId"] for _ in range(5))
    new_key(kms, MALLORY)
    page = kms.list_keys(ALICE, limit=2)
    assert page["Truncated"] and len(page["Keys"]) == 2
    seen = [k["KeyId"] for k in page["Keys"]]
    while page["Truncated"]:
        page = kms.list_keys(ALICE, limit=2, marker=page["NextMarker"])
        seen += [k["KeyId"] for k in page["Keys"]]
    assert seen == ids
    with pytest.raises(ValidationException):
        kms.list_keys(ALICE, limit=0)


# -- encrypt / decrypt / data keys -----------------------------------------------------------

def test_encrypt_decrypt_with_context(kms):
    md = new_key(kms)
    out = kms.encrypt(ALICE, md["KeyId"], b"secret", encryption_context=CTX)
    assert out["KeyId"] == md["Arn"] and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = out["CiphertextBlob"]
    assert b"secret" not in blob
    dec = kms.decrypt(ALICE, blob, encryption_context=dict(reversed(list(CTX.items()))))
    assert dec == {"KeyId": md["Arn"], "Plaintext": b"secret",
                   "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    for wrong in ({}, {"aws:s3:arn": "arn:aws:s3:::bucket/other"}, {**CTX, "x": "y"},
                  {"AWS:S3:ARN": CTX["aws:s3:arn"]}):
        with pytest.raises(InvalidCiphertextException):
            kms.decrypt(ALICE, blob, encryption_context=wrong)


def test_every_flipped_byte_fails(kms):
    md = new_key(kms)
    blob = kms.encrypt(ALICE, md["KeyId"], b"p" * 40, encryption_context=CTX)["CiphertextBlob"]
    key_id_end = 2 + len(md["KeyId"])
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x80
        # A flipped key id names a key that does not exist: AWS answers AccessDenied for that.
        expected = (InvalidCiphertextException if i == 0 or i >= key_id_end
                    else (InvalidCiphertextException, AccessDeniedException))
        with pytest.raises(expected):
            kms.decrypt(ALICE, bytes(bad), encryption_context=CTX)
    for cut in (1, 16, len(blob) - 1):
        with pytest.raises(InvalidCiphertextException):
            kms.decrypt(ALICE, blob[:-cut], encryption_context=CTX)


def test_swapped_key_id_fails_even_for_an_existing_key(kms):
    a, b = new_key(kms), new_key(kms)
    blob = ct.deserialize(kms.encrypt(ALICE, a["KeyId"], b"x")["CiphertextBlob"])
    swapped = ct.serialize(ct.CiphertextBlob(b["KeyId"], 1, blob.nonce, blob.ciphertext))
    with pytest.raises(InvalidCiphertextException):
        kms.decrypt(ALICE, swapped)


def test_plaintext_and_blob_limits(kms):
    kid = new_key(kms)["KeyId"]
    kms.encrypt(ALICE, kid, b"x" * 4096)
    for bad in (b"", b"x" * 4097):
        with pytest.raises(ValidationException):
            kms.encrypt(ALICE, kid, bad)
    for bad in (b"", b"x" * 6145):
        with pytest.raises(ValidationException):
            kms.decrypt(ALICE, bad)
    with pytest.raises(ValidationException):
        kms.encrypt(ALICE, kid, b"x", encryption_context={"k": 1})
    with pytest.raises(InvalidKeyUsageException):
        kms.encrypt(ALICE, kid, b"x", encryption_algorithm="RSAES_OAEP_SHA_256")
    with pytest.raises(ValidationException):
        kms.encrypt(ALICE, kid, b"x", encryption_algorithm="AES")


def test_generate_data_key(kms):
    md = new_key(kms)
    dk = kms.generate_data_key(ALICE, md["KeyId"], key_spec="AES_256", encryption_context=CTX)
    assert set(dk) == {"CiphertextBlob", "Plaintext", "KeyId"} and dk["KeyId"] == md["Arn"]
    assert len(dk["Plaintext"]) == 32
    assert kms.decrypt(ALICE, dk["CiphertextBlob"], encryption_context=CTX)["Plaintext"] \
        == dk["Plaintext"]
    assert len(kms.generate_data_key(ALICE, md["KeyId"], key_spec="AES_128")["Plaintext"]) == 16
    for n in (1, 1024):
        assert len(kms.generate_data_key(ALICE, md["KeyId"], number_of_bytes=n)["Plaintext"]) == n
    wp = kms.generate_data_key_without_plaintext(ALICE, md["KeyId"], key_spec="AES_256",
                                                 encryption_context=CTX)
    assert set(wp) == {"CiphertextBlob", "KeyId"}
    assert len(kms.decrypt(ALICE, wp["CiphertextBlob"], encryption_context=CTX)["Plaintext"]) == 32
    for kw in ({}, {"key_spec": "AES_256", "number_of_bytes": 32}, {"number_of_bytes": 0},
               {"number_of_bytes": 1025}, {"key_spec": "AES_512"}):
        with pytest.raises(ValidationException):
            kms.generate_data_key(ALICE, md["KeyId"], **kw)


def test_every_key_reference_form(kms):
    md = new_key(kms)
    kms.create_alias(ALICE, "alias/app/main", md["KeyId"])
    forms = [md["KeyId"], md["Arn"], "alias/app/main",
             f"arn:aws:kms:us-east-1:{ACCT}:alias/app/main"]
    for ref in forms:
        assert kms.describe_key(ALICE, ref)["KeyMetadata"]["KeyId"] == md["KeyId"]
        blob = kms.encrypt(ALICE, ref, b"x")["CiphertextBlob"]
        assert kms.decrypt(ALICE, blob, key_id=ref)["Plaintext"] == b"x"
        dk = kms.generate_data_key(ALICE, ref, key_spec="AES_256")
        assert dk["KeyId"] == md["Arn"]


def test_decrypt_with_wrong_key_id_is_incorrect_key(kms):
    a, b = new_key(kms), new_key(kms)
    blob = kms.encrypt(ALICE, a["KeyId"], b"x")["CiphertextBlob"]
    with pytest.raises(IncorrectKeyException):
        kms.decrypt(ALICE, blob, key_id=b["KeyId"])
    with pytest.raises(NotFoundException):
        kms.decrypt(ALICE, blob, key_id="alias/missing")


def test_re_encrypt(kms):
    a, b = new_key(kms), new_key(kms)
    blob = kms.encrypt(ALICE, a["KeyId"], b"data", encryption_context=CTX)["CiphertextBlob"]
    out = kms.re_encrypt(ALICE, blob, b["Arn"], source_encryption_context=CTX,
                         destination_encryption_context={"new": "ctx"})
    assert out["SourceKeyId"] == a["Arn"] and out["KeyId"] == b["Arn"]
    assert kms.decrypt(ALICE, out["CiphertextBlob"],
                       encryption_context={"new": "ctx"})["Plaintext"] == b"data"
    with pytest.raises(InvalidCiphertextException):
        kms.re_encrypt(ALICE, blob, b["KeyId"])
    with pytest.raises(IncorrectKeyException):
        kms.re_encrypt(ALICE, blob, b["KeyId"], source_encryption_context=CTX,
                       source_key_id=b["KeyId"])


# -- aliases ---------------------------------------------------------------------------------

def test_alias_lifecycle(kms, clock):
    a, b = new_key(kms), new_key(kms)
    kms.create_alias(ALICE, "alias/one", a["KeyId"])
    with pytest.raises(AlreadyExistsException):
        kms.create_alias(ALICE, "alias/one", b["Arn"])
    clock.t += 10
    kms.update_alias(ALICE, "alias/one", b["Arn"])
    assert kms.describe_key(ALICE, "alias/one")["KeyMetadata"]["KeyId"] == b["KeyId"]
    [entry] = kms.list_aliases(ALICE)["Aliases"]
    assert entry == {"AliasName": "alias/one",
                     "AliasArn": f"arn:aws:kms:us-east-1:{ACCT}:alias/one",
                     "TargetKeyId": b["KeyId"], "CreationDate": T0, "LastUpdatedDate": T0 + 10}
    assert kms.list_aliases(ALICE, key_id=a["KeyId"])["Aliases"] == []
    assert len(kms.list_aliases(ALICE, key_id="alias/one")["Aliases"]) == 1
    kms.delete_alias(ALICE, "alias/one")
    with pytest.raises(NotFoundException):
        kms.describe_key(ALICE, "alias/one")
    with pytest.raises(NotFoundException):
        kms.delete_alias(ALICE, "alias/one")
    with pytest.raises(NotFoundException):
        kms.update_alias(ALICE, "alias/one", a["KeyId"])


@pytest.mark.parametrize("name,err", [
    ("noprefix", InvalidAliasNameException), ("alias/", InvalidAliasNameException),
    ("alias/sp ace", InvalidAliasNameException), ("alias/aws/s3", InvalidAliasNameException),
    ("alias/" + "x" * 251, ValidationException), ("", ValidationException),
])
def test_alias_name_rules(kms, name, err):
    kid = new_key(kms)["KeyId"]
    with pytest.raises(err):
        kms.create_alias(ALICE, name, kid)


def test_alias_allowed_chars_and_target_rules(kms):
    kid = new_key(kms)["KeyId"]
    kms.create_alias(ALICE, "alias/a-b_c/d:e", kid)
    with pytest.raises(ValidationException):
        kms.create_alias(ALICE, "alias/x", "alias/a-b_c/d:e")
    with pytest.raises(NotFoundException):
        kms.create_alias(ALICE, "alias/x", "1234abcd-12ab-34cd-56ef-1234567890ab")


def test_alias_quota_per_key(kms):
    kid = new_key(kms)["KeyId"]
    for i in range(50):
        kms.create_alias(ALICE, f"alias/q{i}", kid)
    with pytest.raises(LimitExceededException):
        kms.create_alias(ALICE, "alias/q50", kid)


def test_aliases_are_per_account(kms):
    kms.create_alias(ALICE, "alias/same", new_key(kms)["KeyId"])
    kms.create_alias(MALLORY, "alias/same", new_key(kms, MALLORY)["KeyId"])
    assert kms.describe_key(ALICE, "alias/same")["KeyMetadata"]["AWSAccountId"] == ACCT
    assert kms.describe_key(MALLORY, "alias/same")["KeyMetadata"]["AWSAccountId"] == OTHER


# -- key states ------------------------------------------------------------------------------

def _crypto_calls(kms: KMS, ref: str, blob: bytes, other: str):
    return {
        "Encrypt": lambda: kms.encrypt(ALICE, ref, b"x"),
        "Decrypt": lambda: kms.decrypt(ALICE, blob),
        "GenerateDataKey": lambda: kms.generate_data_key(ALICE, ref, key_spec="AES_256"),
        "GenerateDataKeyWithoutPlaintext": lambda: kms.generate_data_key_without_plaintext(
            ALICE, ref, number_of_bytes=8),
        "ReEncrypt(source)": lambda: kms.re_encrypt(ALICE, blob, other),
        "ReEncrypt(destination)": lambda: kms.re_encrypt(
            ALICE, kms.encrypt(ALICE, other, b"y")["CiphertextBlob"], ref),
    }


def test_disabled_key(kms, sink):
    md, other = new_key(kms), new_key(kms)
    blob = kms.encrypt(ALICE, md["KeyId"], b"x")["CiphertextBlob"]
    kms.disable_key(ALICE, md["KeyId"])
    assert kms.describe_key(ALICE, md["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    assert kms.describe_key(ALICE, md["KeyId"])["KeyMetadata"]["Enabled"] is False
    for name, call in _crypto_calls(kms, md["KeyId"], blob, other["KeyId"]).items():
        with pytest.raises(DisabledException) as ei:
            call()
        assert ei.value.message == f"{md['Arn']} is disabled.", name
        assert sink.records[-1]["errorCode"] == "DisabledException"
    with pytest.raises(DisabledException):
        kms.rotate_key_on_demand(ALICE, md["KeyId"])
    kms.create_alias(ALICE, "alias/disabled-ok", md["KeyId"])
    kms.update_key_description(ALICE, md["KeyId"], "still editable")
    kms.disable_key(ALICE, md["KeyId"])          # idempotent, as AWS
    kms.enable_key(ALICE, md["KeyId"])
    assert kms.decrypt(ALICE, blob)["Plaintext"] == b"x"


def test_pending_deletion_key(kms, clock, sink):
    md, other = new_key(kms), new_key(kms)
    kms.create_alias(ALICE, "alias/old", md["KeyId"])
    blob = kms.encrypt(ALICE, md["KeyId"], b"x")["CiphertextBlob"]
    out = kms.schedule_key_deletion(ALICE, md["KeyId"], pending_window_in_days=7)
    assert out == {"KeyId": md["Arn"], "DeletionDate": T0 + 7 * DAY,
                   "KeyState": "PendingDeletion", "PendingWindowInDays": 7}
    desc = kms.describe_key(ALICE, "alias/old")["KeyMetadata"]
    assert desc["KeyState"] == "PendingDeletion" and desc["DeletionDate"] == T0 + 7 * DAY
    assert desc["PendingDeletionWindowInDays"] == 7 and desc["Enabled"] is False
    for name, call in _crypto_calls(kms, md["KeyId"], blob, other["KeyId"]).items():
        with pytest.raises(KMSInvalidStateException) as ei:
            call()
        assert ei.value.message == f"{md['Arn']} is pending deletion.", name
        assert sink.records[-1]["errorCode"] == "KMSInvalidStateException"
    for call in (lambda: kms.enable_key(ALICE, md["KeyId"]),
                 lambda: kms.disable_key(ALICE, md["KeyId"]),
                 lambda: kms.schedule_key_deletion(ALICE, md["KeyId"]),
                 lambda: kms.create_alias(ALICE, "alias/new", md["KeyId"]),
                 lambda: kms.update_alias(ALICE, "alias/none-yet", md["KeyId"]),
                 lambda: kms.update_key_description(ALICE, md["KeyId"], "d"),
                 lambda: kms.rotate_key_on_demand(ALICE, md["KeyId"])):
        with pytest.raises((KMSInvalidStateException, NotFoundException)):
            call()
    # Footnote 10: an alias may move away from a key pending deletion, not onto one.
    kms.create_alias(ALICE, "alias/other", other["KeyId"])
    with pytest.raises(KMSInvalidStateException):
        kms.update_alias(ALICE, "alias/other", md["KeyId"])
    kms.update_alias(ALICE, "alias/old", other["KeyId"])
    assert kms.cancel_key_deletion(ALICE, md["KeyId"]) == {"KeyId": md["Arn"]}
    desc = kms.describe_key(ALICE, md["KeyId"])["KeyMetadata"]
    assert desc["KeyState"] == "Disabled" and "DeletionDate" not in desc
    with pytest.raises(KMSInvalidStateException) as ei:
        kms.cancel_key_deletion(ALICE, md["KeyId"])
    assert ei.value.message == f"{md['Arn']} is not pending deletion."


@pytest.mark.parametrize("days", [6, 31, 0, "7", None])
def test_deletion_window_bounds(kms, days):
    kid = new_key(kms)["KeyId"]
    with pytest.raises(ValidationException):
        kms.schedule_key_deletion(ALICE, kid, pending_window_in_days=days)


def test_deletion_after_window(kms, clock, sink, tmp_path):
    md, keep = new_key(kms), new_key(kms)
    kms.create_alias(ALICE, "alias/doomed", md["KeyId"])
    blob = kms.encrypt(ALICE, md["KeyId"], b"x")["CiphertextBlob"]
    kms.schedule_key_deletion(ALICE, md["KeyId"])               # default 30 days
    assert kms.apply_due_deletions(T0 + 30 * DAY - 1) == []
    clock.t = T0 + 30 * DAY
    assert kms.apply_due_deletions() == [md["Arn"]]
    rec = sink.records[-1]
    assert rec["eventName"] == "DeleteKey" and rec["eventType"] == "AwsServiceEvent"
    assert rec["serviceEventDetails"] == {"keyId": md["KeyId"]}
    assert rec["resources"][0]["ARN"] == md["Arn"]
    with pytest.raises(NotFoundException):
        kms.describe_key(ALICE, md["KeyId"])
    with pytest.raises(NotFoundException):
        kms.describe_key(ALICE, "alias/doomed")
    with pytest.raises(AccessDeniedException):
        kms.decrypt(ALICE, blob)
    assert kms._store.list_versions(md["KeyId"]) == []
    assert kms.apply_due_deletions(T0 + 400 * DAY) == []
    assert kms.describe_key(ALICE, keep["KeyId"])


def test_cancelled_deletion_is_not_applied(kms):
    kid = new_key(kms)["KeyId"]
    kms.schedule_key_deletion(ALICE, kid, pending_window_in_days=7)
    kms.cancel_key_deletion(ALICE, kid)
    assert kms.apply_due_deletions(T0 + 100 * DAY) == []
    assert kms.describe_key(ALICE, kid)["KeyMetadata"]["KeyState"] == "Disabled"


# -- rotation --------------------------------------------------------------------------------

def test_rotation_keeps_old_ciphertexts(kms, clock):
    md = new_key(kms)
    before = kms.generate_data_key(ALICE, md["KeyId"], key_spec="AES_256", encryption_context=CTX)
    clock.t += 100
    assert kms.rotate_key_on_demand(ALICE, md["KeyId"]) == {"KeyId": md["Arn"]}
    after = kms.generate_data_key(ALICE, md["KeyId"], key_spec="AES_256", encryption_context=CTX)
    assert ct.deserialize(before["CiphertextBlob"]).key_version == 1
    assert ct.deserialize(after["CiphertextBlob"]).key_version == 2
    for dk in (before, after):
        assert kms.decrypt(ALICE, dk["CiphertextBlob"], encryption_context=CTX)["Plaintext"] \
            == dk["Plaintext"]
    assert kms.list_key_rotations(ALICE, md["KeyId"]) == {
        "Rotations": [{"KeyId": md["Arn"], "RotationDate": T0 + 100,
                       "RotationType": "ON_DEMAND"}], "Truncated": False}


def test_rotation_survives_reopen_and_limit(tmp_path, clock):
    with KMS.open(tmp_path, clock=clock, audit=MemorySink()) as kms:
        kid = new_key(kms)["KeyId"]
        blobs = [kms.encrypt(ALICE, kid, b"v1")["CiphertextBlob"]]
        for i in range(25):
            kms.rotate_key_on_demand(ALICE, kid)
        blobs.append(kms.encrypt(ALICE, kid, b"v26")["CiphertextBlob"])
        with pytest.raises(LimitExceededException):
            kms.rotate_key_on_demand(ALICE, kid)
    with KMS.open(tmp_path, clock=clock, audit=MemorySink()) as kms:
        assert [kms.decrypt(ALICE, b)["Plaintext"] for b in blobs] == [b"v1", b"v26"]
        assert ct.deserialize(blobs[1]).key_version == 26


# -- authorization ---------------------------------------------------------------------------

def test_cross_account_refused(kms, sink):
    md = new_key(kms)
    kms.create_alias(ALICE, "alias/mine", md["KeyId"])
    blob = kms.encrypt(ALICE, md["KeyId"], b"x")["CiphertextBlob"]
    with pytest.raises(AccessDeniedException) as ei:
        kms.encrypt(MALLORY, md["Arn"], b"x")
    assert ei.value.message == (
        f"User: {MALLORY.principal_arn} is not authorized to perform: kms:Encrypt on resource: "
        f"{md['Arn']} because no resource-based policy allows the kms:Encrypt action")
    rec = sink.records[-1]
    assert rec["errorCode"] == "AccessDeniedException" and rec["resources"][0]["ARN"] == md["Arn"]
    for call in (lambda: kms.describe_key(MALLORY, md["Arn"]),
                 lambda: kms.decrypt(MALLORY, blob),
                 lambda: kms.generate_data_key(MALLORY, f"arn:aws:kms:us-east-1:{ACCT}:alias/mine",
                                               key_spec="AES_256"),
                 lambda: kms.disable_key(MALLORY, md["Arn"]),
                 lambda: kms.schedule_key_deletion(MALLORY, md["Arn"])):
        with pytest.raises(AccessDeniedException):
            call()
    # Bare ids and alias names resolve in the caller's own account.
    with pytest.raises(NotFoundException):
        kms.describe_key(MALLORY, md["KeyId"])
    with pytest.raises(NotFoundException):
        kms.describe_key(MALLORY, "alias/mine")
    assert kms.list_keys(MALLORY)["Keys"] == []
    assert kms.describe_key(ALICE, md["KeyId"])["KeyMetadata"]["Enabled"]


def test_aws_managed_key(kms, sink):
    first = kms.get_or_create_aws_managed_key(ALICE)["KeyMetadata"]
    assert first["KeyManager"] == "AWS"
    assert first["Description"] == \
        "Default key that protects my S3 objects when no other key is defined"
    assert kms.get_or_create_aws_managed_key(BOB)["KeyMetadata"] == first
    assert kms.describe_key(ALICE, "alias/aws/s3")["KeyMetadata"] == first
    # Usable only through S3 (kms:ViaService), like AWS's generated key policy.
    with pytest.raises(AccessDeniedException):
        kms.generate_data_key(ALICE, "alias/aws/s3", key_spec="AES_256")
    dk = kms.generate_data_key(S3, "alias/aws/s3", key_spec="AES_256", encryption_context=CTX)
    assert kms.decrypt(S3, dk["CiphertextBlob"], encryption_context=CTX)["Plaintext"] \
        == dk["Plaintext"]
    assert sink.records[-1]["userIdentity"]["invokedBy"] == "s3.amazonaws.com"
    for call in (lambda: kms.schedule_key_deletion(ALICE, first["KeyId"]),
                 lambda: kms.disable_key(ALICE, first["KeyId"]),
                 lambda: kms.create_alias(ALICE, "alias/mine", first["KeyId"])):
        with pytest.raises(AccessDeniedException):
            call()
    with pytest.raises(InvalidAliasNameException):
        kms.delete_alias(ALICE, "alias/aws/s3")
    other = kms.get_or_create_aws_managed_key(MALLORY)["KeyMetadata"]
    assert other["KeyId"] != first["KeyId"] and other["AWSAccountId"] == OTHER


def test_aws_managed_key_creation_is_race_safe(tmp_path):
    kmses = [KMS.open(tmp_path, audit=MemorySink()) for _ in range(2)]
    results, barrier = [], threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        results.append(kmses[i % 2].get_or_create_aws_managed_key(ALICE)["KeyMetadata"]["KeyId"])
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert len(kmses[0].list_keys(ALICE)["Keys"]) == 1
    for k in kmses:
        k.close()


def test_concurrent_calls(kms):
    kid = new_key(kms)["KeyId"]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                dk = kms.generate_data_key(S3, kid, key_spec="AES_256", encryption_context=CTX)
                assert kms.decrypt(S3, dk["CiphertextBlob"],
                                   encryption_context=CTX)["Plaintext"] == dk["Plaintext"]
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_audit_failure_fails_the_call(kms, sink):
    kid = new_key(kms)["KeyId"]
    sink.fail = True
    with pytest.raises(KMSInternalException):
        kms.generate_data_key(ALICE, kid, key_spec="AES_256")
    with pytest.raises(KMSInternalException):
        kms.describe_key(ALICE, "alias/missing")
