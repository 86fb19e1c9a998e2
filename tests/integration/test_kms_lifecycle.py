"""KMS lifecycle on real SQLite with an injected clock (nothing sleeps): automatic rotation,
deletion windows, tags, key policies with the lockout check, imported key material."""
from __future__ import annotations

import json
import os
import sqlite3

import pytest
from cryptography.hazmat.primitives import serialization

from kms.audit import MemorySink
from kms.errors import (AccessDeniedException, ConflictException, DisabledException,
                        ExpiredImportTokenException, IncorrectKeyMaterialException,
                        InvalidCiphertextException, InvalidImportTokenException,
                        InvalidMarkerException, KMSInvalidStateException,
                        LimitExceededException, MalformedPolicyDocumentException,
                        NotFoundException, TagException, UnsupportedOperationException,
                        ValidationException)
from kms.model import Caller
from tests.crypto_outside import wrap_import_material
from tests.kms_policies import KMS_ADMIN
from kms.service import KMS

ACCT, OTHER = "111122223333", "444455556666"
ALICE = Caller(f"arn:aws:iam::{ACCT}:user/alice", ACCT, request_id="req-1",
               identity_policies=KMS_ADMIN)
MALLORY = Caller(f"arn:aws:iam::{OTHER}:user/mallory", OTHER, identity_policies=KMS_ADMIN)
T0 = 1_700_000_000.0
DAY = 86400.0




def new_key(kms: KMS, **kw) -> str:
    return kms.create_key(ALICE, **kw)["KeyMetadata"]["KeyId"]


def events(sink: MemorySink, name: str) -> list[dict]:
    return [r for r in sink.records if r["eventName"] == name]


def roundtrip(kms: KMS, key_id: str, data: bytes = b"data") -> bytes:
    blob = kms.encrypt(ALICE, key_id, data)["CiphertextBlob"]
    assert kms.decrypt(ALICE, blob)["Plaintext"] == data
    return blob


# -- automatic rotation --------------------------------------------------------------------------

def test_rotation_status_defaults_and_enable(kms):
    k = new_key(kms)
    st = kms.get_key_rotation_status(ALICE, k)
    assert st == {"KeyRotationEnabled": False, "KeyId": st["KeyId"]}
    assert st["KeyId"].endswith(k)
    kms.enable_key_rotation(ALICE, k)
    st = kms.get_key_rotation_status(ALICE, k)
    assert st["KeyRotationEnabled"] and st["RotationPeriodInDays"] == 365
    assert st["NextRotationDate"] == T0 + 365 * DAY
    kms.enable_key_rotation(ALICE, k, rotation_period_in_days=90)
    assert kms.get_key_rotation_status(ALICE, k)["NextRotationDate"] == T0 + 90 * DAY
    kms.disable_key_rotation(ALICE, k)
    assert kms.get_key_rotation_status(ALICE, k) == {"KeyRotationEnabled": False,
                                                     "KeyId": st["KeyId"]}


@pytest.mark.parametrize("days", [89, 2561, 0, "365", True])
def test_rotation_period_range(kms, days):
    k = new_key(kms)
    with pytest.raises(ValidationException):
        kms.enable_key_rotation(ALICE, k, rotation_period_in_days=days)


def test_rotates_after_period_and_decrypts_across_three_rotations(kms, clock, sink):
    k = new_key(kms)
    kms.enable_key_rotation(ALICE, k, rotation_period_in_days=90)
    blobs = [(roundtrip(kms, k, b"v1"), b"v1")]
    assert kms.apply_due_rotations(T0 + 90 * DAY - 1) == []
    for n in range(1, 4):
        clock.t = T0 + n * 90 * DAY + n       # each rotation reschedules from when it ran
        rotated = kms.apply_due_rotations()
        assert len(rotated) == 1 and rotated[0].endswith(k)
        assert kms.apply_due_rotations() == []          # rescheduled, not due again
        data = f"v{n + 1}".encode()
        blobs.append((roundtrip(kms, k, data), data))
    for blob, data in blobs:
        assert kms.decrypt(ALICE, blob)["Plaintext"] == data
    rot = kms.list_key_rotations(ALICE, k)["Rotations"]
    assert [r["RotationType"] for r in rot] == ["AUTOMATIC"] * 3
    st = kms.get_key_rotation_status(ALICE, k)
    assert st["NextRotationDate"] == clock.t + 90 * DAY
    recs = events(sink, "RotateKey")
    assert len(recs) == 3
    assert recs[0]["eventType"] == "AwsServiceEvent"
    assert recs[0]["serviceEventDetails"] == {"keyId": k}
    assert recs[0]["userIdentity"]["invokedBy"] == "AWS Internal"


def test_on_demand_and_automatic_types(kms, clock):
    k = new_key(kms)
    kms.rotate_key_on_demand(ALICE, k)
    kms.enable_key_rotation(ALICE, k, rotation_period_in_days=90)
    clock.t = T0 + 90 * DAY
    kms.apply_due_rotations()
    types = [r["RotationType"] for r in kms.list_key_rotations(ALICE, k)["Rotations"]]
    assert types == ["ON_DEMAND", "AUTOMATIC"]


def test_on_demand_conflicts_with_imminent_automatic_rotation(kms, clock):
    k = new_key(kms)
    kms.enable_key_rotation(ALICE, k, rotation_period_in_days=90)
    clock.t = T0 + 90 * DAY - 600
    with pytest.raises(ConflictException):
        kms.rotate_key_on_demand(ALICE, k)


def test_on_demand_limit_25(kms):
    k = new_key(kms)
    for _ in range(25):
        kms.rotate_key_on_demand(ALICE, k)
    with pytest.raises(LimitExceededException):
        kms.rotate_key_on_demand(ALICE, k)


def test_rotation_suspended_while_pending_deletion(kms, clock):
    k = new_key(kms)
    kms.enable_key_rotation(ALICE, k, rotation_period_in_days=90)
    kms.schedule_key_deletion(ALICE, k, pending_window_in_days=30)
    assert kms.get_key_rotation_status(ALICE, k)["KeyRotationEnabled"] is False
    with pytest.raises(KMSInvalidStateException):
        kms.enable_key_rotation(ALICE, k)
    with pytest.raises(KMSInvalidStateException):
        kms.disable_key_rotation(ALICE, k)
    clock.t = T0 + 91 * DAY       # past the rotation date (and the window is 30 days ... )
    kms.cancel_key_deletion(ALICE, k)   # ... so cancel before the deletion runs
    clock.t = T0 + 25 * DAY
    kms.schedule_key_deletion(ALICE, k, pending_window_in_days=7)
    clock.t = T0 + 91 * DAY - 1
    kms.cancel_key_deletion(ALICE, k)
    clock.t = T0 + 91 * DAY
    assert kms.apply_due_rotations() == []                  # Disabled after cancel: waits
    st = kms.get_key_rotation_status(ALICE, k)
    assert st["KeyRotationEnabled"] and st["RotationPeriodInDays"] == 90   # restored
    kms.enable_key(ALICE, k)
    assert len(kms.apply_due_rotations()) == 1               # rotates once enabled again


def test_rotation_state_and_type_rules(kms):
    k = new_key(kms)
    kms.disable_key(ALICE, k)
    with pytest.raises(DisabledException):
        kms.enable_key_rotation(ALICE, k)
    with pytest.raises(DisabledException):
        kms.disable_key_rotation(ALICE, k)
    ext = new_key(kms, origin="EXTERNAL")
    for op in (kms.enable_key_rotation, kms.disable_key_rotation,
               kms.get_key_rotation_status):
        with pytest.raises(UnsupportedOperationException, match="origin is EXTERNAL"):
            op(ALICE, ext)
    with pytest.raises(AccessDeniedException):
        kms.enable_key_rotation(MALLORY, f"arn:aws:kms:us-east-1:{ACCT}:key/{k}")
    with pytest.raises(NotFoundException):
        kms.get_key_rotation_status(ALICE, "00000000-0000-4000-8000-000000000000")


# -- deletion window ---------------------------------------------------------------------------

def test_deletion_window_cancel_and_destroy(kms, clock, sink):
    k = new_key(kms)
    blob = roundtrip(kms, k)
    out = kms.schedule_key_deletion(ALICE, k, pending_window_in_days=7)
    assert out["DeletionDate"] == T0 + 7 * DAY
    clock.t = T0 + 3 * DAY
    for attempt in (lambda: kms.encrypt(ALICE, k, b"x"), lambda: kms.decrypt(ALICE, blob)):
        with pytest.raises(KMSInvalidStateException, match="pending deletion"):
            attempt()
    failed = [r for r in sink.records if r["eventName"] in ("Encrypt", "Decrypt")
              and r.get("errorCode") == "KMSInvalidStateException"]
    assert len(failed) == 2                 # refused attempts are audited
    kms.cancel_key_deletion(ALICE, k)
    kms.enable_key(ALICE, k)
    assert kms.decrypt(ALICE, blob)["Plaintext"] == b"data"      # restored
    kms.schedule_key_deletion(ALICE, k, pending_window_in_days=7)
    assert kms.apply_due_deletions(T0 + 10 * DAY - 1) == []
    clock.t = T0 + 10 * DAY
    assert len(kms.apply_due_deletions()) == 1
    with pytest.raises(AccessDeniedException):       # data gone: the key no longer exists
        kms.decrypt(ALICE, blob)
    with pytest.raises(NotFoundException):
        kms.describe_key(ALICE, k)
    assert events(sink, "DeleteKey")[-1]["eventType"] == "AwsServiceEvent"


# -- tags --------------------------------------------------------------------------------------

def test_tags(kms):
    k = new_key(kms, tags=[{"TagKey": "team", "TagValue": "storage"}])
    assert kms.list_resource_tags(ALICE, k) == {
        "Tags": [{"TagKey": "team", "TagValue": "storage"}], "Truncated": False}
    kms.tag_resource(ALICE, k, [{"TagKey": "team", "TagValue": "s3"},
                                {"TagKey": "env", "TagValue": ""}])
    assert kms.list_resource_tags(ALICE, k)["Tags"] == [
        {"TagKey": "team", "TagValue": "s3"}, {"TagKey": "env", "TagValue": ""}]
    kms.untag_resource(ALICE, k, ["team", "absent"])
    assert kms.list_resource_tags(ALICE, k)["Tags"] == [{"TagKey": "env", "TagValue": ""}]
    kms.tag_resource(ALICE, k, [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(49)])
    page = kms.list_resource_tags(ALICE, k, limit=20)
    assert page["Truncated"] and len(page["Tags"]) == 20
    rest = kms.list_resource_tags(ALICE, k, marker=page["NextMarker"])
    assert len(rest["Tags"]) == 30 and not rest["Truncated"]
    with pytest.raises(LimitExceededException):
        kms.tag_resource(ALICE, k, [{"TagKey": "one-too-many", "TagValue": "v"}])
    with pytest.raises(InvalidMarkerException):
        kms.list_resource_tags(ALICE, k, marker="nope")
    with pytest.raises(ValidationException):
        kms.list_resource_tags(ALICE, k, limit=51)


@pytest.mark.parametrize("tags", [
    [{"TagKey": "aws:reserved", "TagValue": "v"}],
    [{"TagKey": "", "TagValue": "v"}],
    [{"TagKey": "k" * 129, "TagValue": "v"}],
    [{"TagKey": "k", "TagValue": "v" * 257}],
    [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)],
])
def test_bad_tags(kms, tags):
    k = new_key(kms)
    with pytest.raises(TagException):
        kms.tag_resource(ALICE, k, tags)
    with pytest.raises(TagException):
        kms.create_key(ALICE, tags=tags)


def test_tags_state_rules(kms):
    k = new_key(kms)
    with pytest.raises(TagException):
        kms.untag_resource(ALICE, k, ["aws:x"])
    kms.schedule_key_deletion(ALICE, k, pending_window_in_days=7)
    with pytest.raises(KMSInvalidStateException):
        kms.tag_resource(ALICE, k, [{"TagKey": "a", "TagValue": "b"}])
    with pytest.raises(KMSInvalidStateException):
        kms.untag_resource(ALICE, k, ["a"])
    assert kms.list_resource_tags(ALICE, k)["Tags"] == []      # listing works in every state


# -- key policies ------------------------------------------------------------------------------

def policy(principal: str | dict = f"arn:aws:iam::{ACCT}:root", action="kms:*",
           effect="Allow", **extra) -> str:
    st = {"Sid": "s", "Effect": effect, "Principal": {"AWS": principal} if isinstance(
        principal, str) else principal, "Action": action, "Resource": "*", **extra}
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


def test_default_policy_and_put(kms):
    k = new_key(kms)
    got = kms.get_key_policy(ALICE, k)
    assert got["PolicyName"] == "default"
    doc = json.loads(got["Policy"])
    assert doc["Statement"][0]["Sid"] == "Enable IAM User Permissions"
    assert doc["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCT}:root"}
    assert doc["Statement"][0]["Action"] == "kms:*"
    assert kms.list_key_policies(ALICE, k) == {"PolicyNames": ["default"], "Truncated": False}
    mine = policy(ALICE.principal_arn, ["kms:PutKeyPolicy", "kms:Describe*", "kms:GetKeyPolicy",
                                        "kms:ScheduleKeyDeletion"])
    kms.put_key_policy(ALICE, k, mine)
    assert kms.get_key_policy(ALICE, k, "default")["Policy"] == mine
    with pytest.raises(NotFoundException):
        kms.get_key_policy(ALICE, k, "other")
    with pytest.raises(NotFoundException):
        kms.put_key_policy(ALICE, k, mine, policy_name="other")
    # Stored in every state.
    kms.schedule_key_deletion(ALICE, k, pending_window_in_days=7)
    kms.put_key_policy(ALICE, k, policy())
    assert kms.get_key_policy(ALICE, k)["Policy"] == policy()


def test_lockout_safety_check(kms):
    k = new_key(kms)
    bob_only = policy(f"arn:aws:iam::{ACCT}:user/bob")
    for bad in (bob_only, policy(action="kms:Encrypt"),
                json.dumps({"Version": "2012-10-17", "Statement": [
                    json.loads(policy())["Statement"][0],
                    {"Effect": "Deny", "Principal": "*", "Action": "kms:Put*",
                     "Resource": "*"}]}),
                policy(Condition={"Bool": {"aws:SecureTransport": "true"}})):
        with pytest.raises(MalformedPolicyDocumentException, match="will not allow you"):
            kms.put_key_policy(ALICE, k, bad)
        with pytest.raises(MalformedPolicyDocumentException):
            kms.create_key(ALICE, policy=bad)
    # With the bypass Alice locks herself out (AWS authorization): only Bob gets in.
    bob = Caller(f"arn:aws:iam::{ACCT}:user/bob", ACCT)
    locked = new_key(kms)
    kms.put_key_policy(ALICE, locked, bob_only, bypass_policy_lockout_safety_check=True)
    assert kms.get_key_policy(bob, locked)["Policy"] == bob_only
    created = kms.create_key(ALICE, policy=bob_only, bypass_policy_lockout_safety_check=True)
    assert kms.get_key_policy(bob, created["KeyMetadata"]["KeyId"])["Policy"] == bob_only
    for ok in (policy("*"), policy(ACCT), policy(action="kms:Put*"),
               policy({"AWS": [ALICE.principal_arn, "arn:aws:iam::444455556666:root"]})):
        kms.put_key_policy(ALICE, k, ok)


@pytest.mark.parametrize("doc", [
    "not json", "[]", "{}", json.dumps({"Statement": []}),
    json.dumps({"Version": "2001-01-01", "Statement": [{}]}),
    policy(effect="Maybe"), policy(principal="arn:aws:iam::12:root"),
    policy(principal={"Bogus": "x"}), policy(action=""), policy(action="kms PutKeyPolicy"),
    json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                        "Action": "kms:*"}]}),
    json.dumps({"Version": "2012-10-17", "Extra": 1, "Statement": []}),
])
def test_malformed_policies(kms, doc):
    k = new_key(kms)
    with pytest.raises(MalformedPolicyDocumentException):
        kms.put_key_policy(ALICE, k, doc)


def test_policy_size_limit(kms):
    k = new_key(kms)
    big = json.dumps({"Version": "2012-10-17", "Id": "x" * 33000,
                      "Statement": json.loads(policy())["Statement"]})
    with pytest.raises(LimitExceededException):
        kms.put_key_policy(ALICE, k, big)


def test_update_key_description(kms):
    k = new_key(kms, description="old")
    kms.update_key_description(ALICE, k, "new")
    assert kms.describe_key(ALICE, k)["KeyMetadata"]["Description"] == "new"


# -- imported key material ---------------------------------------------------------------------



def import_material(kms: KMS, key_id: str, material: bytes,
                    algorithm: str = "RSAES_OAEP_SHA_256", **kw) -> dict:
    params = kms.get_parameters_for_import(ALICE, key_id, algorithm, "RSA_2048")
    return kms.import_key_material(ALICE, key_id, params["ImportToken"],
                                   wrap_import_material(params, material, algorithm), **kw)


def test_external_key_starts_pending_import(kms):
    md = kms.create_key(ALICE, origin="EXTERNAL")["KeyMetadata"]
    assert md["Origin"] == "EXTERNAL" and md["KeyState"] == "PendingImport"
    assert md["Enabled"] is False
    with pytest.raises(KMSInvalidStateException, match="pending import"):
        kms.encrypt(ALICE, md["KeyId"], b"x")
    with pytest.raises(KMSInvalidStateException):
        kms.enable_key(ALICE, md["KeyId"])
    with pytest.raises(UnsupportedOperationException):
        kms.create_key(ALICE, origin="EXTERNAL", key_spec="RSA_2048",
                       key_usage="SIGN_VERIFY")


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256",
                                       "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"])
def test_import_roundtrip(kms, clock, algorithm):
    k = new_key(kms, origin="EXTERNAL")
    params = kms.get_parameters_for_import(ALICE, k, algorithm, "RSA_2048")
    assert params["ParametersValidTo"] == T0 + DAY and params["KeyId"].endswith(k)
    serialization.load_der_public_key(params["PublicKey"])
    material = os.urandom(32)
    out = kms.import_key_material(ALICE, k, params["ImportToken"],
                                  wrap_import_material(params, material, algorithm),
                                  expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert len(out["KeyMaterialId"]) == 64
    md = kms.describe_key(ALICE, k)["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in md
    blob = roundtrip(kms, k, b"imported")
    # Delete the material: PendingImport, data unusable until the same material comes back.
    kms.delete_imported_key_material(ALICE, k)
    assert kms.describe_key(ALICE, k)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(KMSInvalidStateException):
        kms.decrypt(ALICE, blob)
    kms.delete_imported_key_material(ALICE, k)          # no effect when already pending
    with pytest.raises(IncorrectKeyMaterialException):
        import_material(kms, k, os.urandom(32))
    import_material(kms, k, material)
    assert kms.decrypt(ALICE, blob)["Plaintext"] == b"imported"


def test_imported_material_never_stored_raw(kms, tmp_path):
    k = new_key(kms, origin="EXTERNAL")
    material = os.urandom(32)
    import_material(kms, k, material)
    raw = (tmp_path / "kms" / "kms.db").read_bytes()
    for f in (tmp_path / "kms").iterdir():
        assert material not in f.read_bytes()
    assert raw


def test_material_expiry(kms, clock, sink):
    k = new_key(kms, origin="EXTERNAL")
    material = os.urandom(32)
    import_material(kms, k, material, valid_to=T0 + 10 * DAY)
    md = kms.describe_key(ALICE, k)["KeyMetadata"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and md["ValidTo"] == T0 + 10 * DAY
    blob = roundtrip(kms, k)
    assert kms.apply_due_expirations(T0 + 10 * DAY - 1) == []
    clock.t = T0 + 10 * DAY
    kms.apply_due_rotations()                 # the scheduler's entry point applies expiries
    assert kms.describe_key(ALICE, k)["KeyMetadata"]["KeyState"] == "PendingImport"
    assert "ValidTo" not in kms.describe_key(ALICE, k)["KeyMetadata"]
    rec = events(sink, "DeleteExpiredKeyMaterial")
    assert len(rec) == 1 and rec[0]["eventType"] == "AwsServiceEvent"
    with pytest.raises(KMSInvalidStateException):
        kms.decrypt(ALICE, blob)
    import_material(kms, k, material)        # reimport the same material
    assert kms.decrypt(ALICE, blob)["Plaintext"] == b"data"


def test_expiry_while_pending_deletion_then_cancel(kms, clock):
    k = new_key(kms, origin="EXTERNAL")
    import_material(kms, k, os.urandom(32), valid_to=T0 + 2 * DAY)
    kms.schedule_key_deletion(ALICE, k, pending_window_in_days=7)
    clock.t = T0 + 3 * DAY
    assert len(kms.apply_due_expirations()) == 1
    assert kms.describe_key(ALICE, k)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    kms.cancel_key_deletion(ALICE, k)
    assert kms.describe_key(ALICE, k)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_import_errors(kms, clock):
    k = new_key(kms, origin="EXTERNAL")
    other = new_key(kms, origin="EXTERNAL")
    native = new_key(kms)
    with pytest.raises(UnsupportedOperationException, match="origin is AWS_KMS"):
        kms.get_parameters_for_import(ALICE, native, "RSAES_OAEP_SHA_256", "RSA_2048")
    with pytest.raises(UnsupportedOperationException):
        kms.delete_imported_key_material(ALICE, native)
    with pytest.raises(ValidationException):
        kms.get_parameters_for_import(ALICE, k, "NOPE", "RSA_2048")
    with pytest.raises(ValidationException):
        kms.get_parameters_for_import(ALICE, k, "RSAES_OAEP_SHA_256", "RSA_1024")
    with pytest.raises(UnsupportedOperationException):
        kms.get_parameters_for_import(ALICE, k, "RSAES_PKCS1_V1_5", "RSA_2048")
    with pytest.raises(UnsupportedOperationException):
        kms.get_parameters_for_import(ALICE, k, "SM2PKE", "SM2")
    params = kms.get_parameters_for_import(ALICE, k, "RSAES_OAEP_SHA_256", "RSA_2048")
    good = wrap_import_material(params, os.urandom(32), "RSAES_OAEP_SHA_256")
    with pytest.raises(InvalidImportTokenException):
        kms.import_key_material(ALICE, other, params["ImportToken"], good)
    tampered = bytearray(params["ImportToken"])
    tampered[-1] ^= 1
    with pytest.raises(InvalidImportTokenException):
        kms.import_key_material(ALICE, k, bytes(tampered), good)
    with pytest.raises(InvalidCiphertextException):
        kms.import_key_material(ALICE, k, params["ImportToken"], b"\x00" * 256)
    with pytest.raises(IncorrectKeyMaterialException):
        kms.import_key_material(ALICE, k, params["ImportToken"],
                                wrap_import_material(params, os.urandom(16), "RSAES_OAEP_SHA_256"))
    with pytest.raises(ValidationException):        # EXPIRES needs ValidTo
        kms.import_key_material(ALICE, k, params["ImportToken"], good,
                                expiration_model="KEY_MATERIAL_EXPIRES")
    with pytest.raises(ValidationException):
        kms.import_key_material(ALICE, k, params["ImportToken"], good,
                                valid_to=T0 + 400 * DAY)
    with pytest.raises(ValidationException):
        kms.import_key_material(ALICE, k, params["ImportToken"], good, valid_to=T0 - 1)
    with pytest.raises(ValidationException):
        kms.import_key_material(ALICE, k, params["ImportToken"], good, valid_to=T0 + DAY,
                                expiration_model="KEY_MATERIAL_DOES_NOT_EXPIRE")
    clock.t = T0 + DAY + 1
    with pytest.raises(ExpiredImportTokenException):
        kms.import_key_material(ALICE, k, params["ImportToken"], good)
    kms.schedule_key_deletion(ALICE, k, pending_window_in_days=7)
    with pytest.raises(KMSInvalidStateException):
        kms.get_parameters_for_import(ALICE, k, "RSAES_OAEP_SHA_256", "RSA_2048")
    with pytest.raises(UnsupportedOperationException):
        kms.rotate_key_on_demand(ALICE, other)


# -- schema migration --------------------------------------------------------------------------

V1_SCHEMA_KEYS = """CREATE TABLE keys (key_id TEXT PRIMARY KEY, arn TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL, creation_date REAL NOT NULL, description TEXT NOT NULL,
    key_usage TEXT NOT NULL, key_spec TEXT NOT NULL, origin TEXT NOT NULL,
    key_manager TEXT NOT NULL, key_state TEXT NOT NULL, deletion_date REAL,
    pending_window_days INTEGER, policy TEXT NOT NULL, tags TEXT NOT NULL,
    current_version INTEGER NOT NULL)"""


def test_version_1_database_still_opens(tmp_path, clock, sink):
    kms = KMS.open(tmp_path, clock=clock, audit=sink)
    k = new_key(kms)
    blob = roundtrip(kms, k)
    kms.close()
    # Turn the file back into a version-1 database: drop what v2 and v3 added.
    con = sqlite3.connect(tmp_path / "kms" / "kms.db")
    con.executescript(f"""
        PRAGMA foreign_keys=OFF;
        DROP TABLE policy_principals;
        DROP TABLE grant_principals;
        DROP TABLE import_tokens;
        DROP TABLE custom_key_stores;
        DROP TABLE settings;
        DROP TABLE grants;
        DROP TABLE key_replicas;
        CREATE TABLE keys_v1 AS SELECT key_id, arn, account_id, creation_date, description,
            key_usage, key_spec, origin, key_manager, key_state, deletion_date,
            pending_window_days, policy, tags, current_version FROM keys;
        DROP TABLE keys;
        {V1_SCHEMA_KEYS};
        INSERT INTO keys SELECT * FROM keys_v1;
        DROP TABLE keys_v1;
        PRAGMA user_version=1;""")
    con.close()
    kms = KMS.open(tmp_path, clock=clock, audit=sink)
    try:
        assert kms.decrypt(ALICE, blob)["Plaintext"] == b"data"
        kms.enable_key_rotation(ALICE, k)
        assert kms.get_key_rotation_status(ALICE, k)["KeyRotationEnabled"]
        (ver,) = sqlite3.connect(tmp_path / "kms" / "kms.db").execute(
            "PRAGMA user_version").fetchone()
        from kms.store.sqlite import SCHEMA_VERSION
        assert ver == SCHEMA_VERSION
    finally:
        kms.close()
