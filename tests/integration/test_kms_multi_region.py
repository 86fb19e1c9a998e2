"""Multi-Region keys in the library: per-region namespaces, ReplicateKey, shared material and
rotation, UpdatePrimaryRegion, replica deletion (real SQLite)."""
from __future__ import annotations

import sqlite3

import pytest

from kms.errors import (AccessDeniedException, AlreadyExistsException, KMSInvalidStateException,
                        NotFoundException, UnsupportedOperationException, ValidationException)
from kms.model import Caller
from kms.service import KMS
from tests.kms_policies import KMS_ADMIN

ACCT = "111122223333"
ALICE = Caller(f"arn:aws:iam::{ACCT}:user/alice", ACCT, request_id="req-1",
               identity_policies=KMS_ADMIN)
T0, DAY = 1_700_000_000.0, 86400.0
A, B, C = "us-east-1", "eu-west-1", "ap-south-1"




def mrk(kms: KMS) -> str:
    key_id = kms.create_key(ALICE, multi_region=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(ALICE, key_id, B)
    return key_id


def test_single_region_key_is_not_found_in_another_region(kms):
    key_id = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(ALICE, key_id, b"x")["CiphertextBlob"]
    eu = kms.in_region(B)
    with pytest.raises(NotFoundException):
        eu.describe_key(ALICE, key_id)
    with pytest.raises(AccessDeniedException):
        eu.decrypt(ALICE, blob)
    assert eu.list_keys(ALICE)["Keys"] == []
    assert kms.in_region(B) is eu


def test_replicate_describe_and_cross_region_decrypt(kms, sink):
    meta = kms.create_key(ALICE, multi_region=True, description="d")["KeyMetadata"]
    key_id = meta["KeyId"]
    assert key_id.startswith("mrk-") and len(key_id) == 36
    assert meta["MultiRegion"] is True
    assert meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    out = kms.replicate_key(ALICE, key_id, B, tags=[{"TagKey": "t", "TagValue": "v"}])
    rep = out["ReplicaKeyMetadata"]
    assert rep["Arn"] == f"arn:aws:kms:{B}:{ACCT}:key/{key_id}"
    assert rep["Description"] == "d" and rep["MultiRegionConfiguration"]["MultiRegionKeyType"] \
        == "REPLICA"
    assert out["ReplicaTags"] == [{"TagKey": "t", "TagValue": "v"}]
    eu = kms.in_region(B)
    conf = eu.describe_key(ALICE, key_id)["KeyMetadata"]["MultiRegionConfiguration"]
    assert conf["PrimaryKey"] == {"Arn": f"arn:aws:kms:{A}:{ACCT}:key/{key_id}", "Region": A}
    assert conf["ReplicaKeys"] == [{"Arn": rep["Arn"], "Region": B}]
    blob = kms.encrypt(ALICE, key_id, b"secret", encryption_context={"a": "b"})["CiphertextBlob"]
    got = eu.decrypt(ALICE, blob, encryption_context={"a": "b"})
    assert got["Plaintext"] == b"secret" and got["KeyId"] == rep["Arn"]
    back = eu.encrypt(ALICE, key_id, b"back")["CiphertextBlob"]
    assert kms.decrypt(ALICE, back)["Plaintext"] == b"back"
    assert [r["awsRegion"] for r in sink.records if r["eventName"] == "Decrypt"] == [B, A]
    with pytest.raises(AlreadyExistsException):
        kms.replicate_key(ALICE, key_id, B)
    with pytest.raises(UnsupportedOperationException):
        eu.replicate_key(ALICE, key_id, C)     # only from the primary
    with pytest.raises(NotFoundException):
        kms.in_region(C).describe_key(ALICE, key_id)


def test_replicate_rejects_single_region_keys_and_bad_regions(kms):
    key_id = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
    with pytest.raises(UnsupportedOperationException):
        kms.replicate_key(ALICE, key_id, B)
    m = kms.create_key(ALICE, multi_region=True)["KeyMetadata"]["KeyId"]
    for bad in ("nowhere", A):
        with pytest.raises(ValidationException):
            kms.replicate_key(ALICE, m, bad)
    kms.region_allowed = lambda r: r in (A, B)
    with pytest.raises(ValidationException):
        kms.replicate_key(ALICE, m, C)


def test_rotation_of_the_primary_rotates_every_replica(kms):
    key_id = mrk(kms)
    eu = kms.in_region(B)
    old_a = kms.encrypt(ALICE, key_id, b"old-a")["CiphertextBlob"]
    old_b = eu.encrypt(ALICE, key_id, b"old-b")["CiphertextBlob"]
    with pytest.raises(UnsupportedOperationException):
        eu.rotate_key_on_demand(ALICE, key_id)
    with pytest.raises(UnsupportedOperationException):
        eu.enable_key_rotation(ALICE, key_id)
    kms.rotate_key_on_demand(ALICE, key_id)
    new_b = eu.encrypt(ALICE, key_id, b"new-b")["CiphertextBlob"]
    assert new_b[:60] != old_b[:60]
    for region in (kms, eu):
        assert region.decrypt(ALICE, old_a)["Plaintext"] == b"old-a"
        assert region.decrypt(ALICE, old_b)["Plaintext"] == b"old-b"
        assert region.decrypt(ALICE, new_b)["Plaintext"] == b"new-b"
    assert len(eu.list_key_rotations(ALICE, key_id)["Rotations"]) == 1


def test_regional_state_policy_and_aliases(kms):
    key_id = mrk(kms)
    eu = kms.in_region(B)
    eu.disable_key(ALICE, key_id)
    assert kms.describe_key(ALICE, key_id)["KeyMetadata"]["Enabled"] is True
    assert eu.describe_key(ALICE, key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    eu.enable_key(ALICE, key_id)
    eu.update_key_description(ALICE, key_id, "eu copy")
    assert kms.describe_key(ALICE, key_id)["KeyMetadata"]["Description"] == ""
    kms.create_alias(ALICE, "alias/shared", key_id)
    eu.create_alias(ALICE, "alias/shared", key_id)    # aliases are per region too
    blob = eu.encrypt(ALICE, "alias/shared", b"x")["CiphertextBlob"]
    assert kms.decrypt(ALICE, blob)["Plaintext"] == b"x"
    assert [k["KeyId"] for k in eu.list_keys(ALICE)["Keys"]] == [key_id]


def test_update_primary_region_swaps_roles(kms):
    key_id = mrk(kms)
    eu = kms.in_region(B)
    with pytest.raises(UnsupportedOperationException):
        eu.update_primary_region(ALICE, key_id, A)
    kms.update_primary_region(ALICE, key_id, B)
    conf = eu.describe_key(ALICE, key_id)["KeyMetadata"]["MultiRegionConfiguration"]
    assert conf["MultiRegionKeyType"] == "PRIMARY" and conf["PrimaryKey"]["Region"] == B
    assert [r["Region"] for r in conf["ReplicaKeys"]] == [A]
    assert kms.describe_key(ALICE, key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "MultiRegionKeyType"] == "REPLICA"
    blob = kms.encrypt(ALICE, key_id, b"x")["CiphertextBlob"]
    eu.rotate_key_on_demand(ALICE, key_id)
    assert eu.decrypt(ALICE, blob)["Plaintext"] == b"x"
    with pytest.raises(UnsupportedOperationException):
        kms.rotate_key_on_demand(ALICE, key_id)


def test_primary_waits_for_its_replicas_to_be_deleted(kms, clock, sink):
    key_id = mrk(kms)
    eu = kms.in_region(B)
    blob = kms.encrypt(ALICE, key_id, b"x")["CiphertextBlob"]
    out = kms.schedule_key_deletion(ALICE, key_id, pending_window_in_days=7)
    assert out["KeyState"] == "PendingReplicaDeletion" and "DeletionDate" not in out
    kms.cancel_key_deletion(ALICE, key_id)
    assert kms.describe_key(ALICE, key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(ALICE, key_id)
    kms.schedule_key_deletion(ALICE, key_id, pending_window_in_days=7)
    eu.schedule_key_deletion(ALICE, key_id, pending_window_in_days=7)
    clock.t += 8 * DAY
    assert kms.apply_due_deletions() == []
    assert eu.apply_due_deletions() == [f"arn:aws:kms:{B}:{ACCT}:key/{key_id}"]
    assert [r["awsRegion"] for r in sink.records if r["eventName"] == "DeleteKey"] == [B]
    with pytest.raises(NotFoundException):
        eu.describe_key(ALICE, key_id)
    meta = kms.describe_key(ALICE, key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert meta["DeletionDate"] == clock.t + 7 * DAY
    assert meta["MultiRegionConfiguration"]["ReplicaKeys"] == []
    with pytest.raises(KMSInvalidStateException):
        kms.decrypt(ALICE, blob)
    clock.t += 8 * DAY
    assert [k.region for k in kms.regions_with_keys()] == [A]
    assert kms.apply_due_deletions() == [f"arn:aws:kms:{A}:{ACCT}:key/{key_id}"]


def test_schema_5_keeps_old_rows_in_their_region(tmp_path, clock, sink):
    with KMS.open(tmp_path, clock=clock, audit=sink) as kms:
        key_id = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
        kms.create_alias(ALICE, "alias/old", key_id)
    con = sqlite3.connect(tmp_path / "kms" / "kms.db")
    assert con.execute("SELECT region FROM keys").fetchall() == [(A,)]
    assert con.execute("SELECT region FROM aliases").fetchall() == [(A,)]
    assert con.execute("PRAGMA user_version").fetchone() >= (5,)      # v6: principal ids
    con.close()
