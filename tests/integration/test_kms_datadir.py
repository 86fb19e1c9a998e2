"""The KMS data dir on a real filesystem: no plaintext key material anywhere, root key file
0600 (and refused when wider), one CloudTrail-shaped audit record per call with no secrets."""
from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat

import pytest

from kms.audit import trail_files
from kms.backends.software import material_aad
from kms.crypto.rootkey import FileRootKey, RootKeyError
from kms.errors import KMSInternalException, NotFoundException
from kms.model import Caller
from tests.kms_policies import KMS_ADMIN
from kms.service import KMS

ACCT = "111122223333"
ALICE = Caller(f"arn:aws:iam::{ACCT}:user/alice", ACCT, source_ip="192.0.2.1",
               user_agent="aws-cli/2", request_id="req-42", access_key_id="AKIAEXAMPLE",
               via_service="s3.us-east-1.amazonaws.com", identity_policies=KMS_ADMIN)
CTX = {"aws:s3:arn": "arn:aws:s3:::bucket/object"}


def _files(root):
    for dirpath, _, names in os.walk(root):
        for n in names:
            yield os.path.join(dirpath, n)


def _raw_materials(data_dir) -> list[bytes]:
    root = FileRootKey.open(data_dir / "kms" / "root.key")
    con = sqlite3.connect(data_dir / "kms" / "kms.db")
    rows = con.execute("SELECT k.arn, v.version, v.material FROM key_versions v "
                       "JOIN keys k USING (key_id)").fetchall()
    con.close()
    return [root.unwrap(rec, material_aad(arn, ver)) for arn, ver, rec in rows]


def test_no_plaintext_key_material_in_data_dir(tmp_path):
    secrets: list[bytes] = []
    with KMS.open(tmp_path) as kms:
        kid = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
        kms.rotate_key_on_demand(ALICE, kid)
        for _ in range(3):
            secrets.append(kms.generate_data_key(ALICE, kid, key_spec="AES_256",
                                                 encryption_context=CTX)["Plaintext"])
        secrets.append(kms.decrypt(ALICE, kms.encrypt(ALICE, kid, b"S" * 32)["CiphertextBlob"])
                       ["Plaintext"])
    materials = _raw_materials(tmp_path)
    assert len(materials) == 2 and all(len(m) == 32 for m in materials)
    needles = []
    for s in secrets + materials:
        needles += [s, s.hex().encode(), base64.b64encode(s)]
    files = list(_files(tmp_path))
    assert any(f.endswith("kms.db") for f in files) and any(f.endswith(".jsonl") for f in files)
    for path in files:
        data = open(path, "rb").read()
        for needle in needles:
            assert needle not in data, path


def test_root_key_file_mode_and_format(tmp_path):
    KMS.open(tmp_path).close()
    path = tmp_path / "kms" / "root.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = path.read_bytes()
    assert len(data) == 49 and data[0] == 0x01
    assert stat.S_IMODE(os.stat(tmp_path / "kms").st_mode) & 0o077 == 0
    assert stat.S_IMODE(os.stat(tmp_path / "audit" / "trail").st_mode) == 0o700
    # Reopening keeps the same root key (existing material still unwraps).
    with KMS.open(tmp_path) as kms:
        kid = kms.create_key(ALICE)["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(ALICE, kid, b"x")["CiphertextBlob"]
    assert path.read_bytes() == data
    with KMS.open(tmp_path) as kms:
        assert kms.decrypt(ALICE, blob)["Plaintext"] == b"x"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_root_key_readable_by_others(tmp_path, mode):
    KMS.open(tmp_path).close()
    os.chmod(tmp_path / "kms" / "root.key", mode)
    with pytest.raises(RootKeyError):
        KMS.open(tmp_path)


def test_refuses_unknown_root_key_format(tmp_path):
    KMS.open(tmp_path).close()
    path = tmp_path / "kms" / "root.key"
    path.write_bytes(b"\x02" + path.read_bytes()[1:])
    with pytest.raises(RootKeyError):
        KMS.open(tmp_path)


def test_root_key_wrap_binds_aad(tmp_path):
    from kms.crypto.aead import CryptoError
    root = FileRootKey.open(tmp_path / "root.key")
    blob = root.wrap(b"k" * 32, b"aad-1")
    assert root.unwrap(blob, b"aad-1") == b"k" * 32
    with pytest.raises(CryptoError):
        root.unwrap(blob, b"aad-2")
    with pytest.raises(CryptoError):
        FileRootKey.open(tmp_path / "other.key").unwrap(blob, b"aad-1")


def test_newer_schema_refused(tmp_path):
    KMS.open(tmp_path).close()
    con = sqlite3.connect(tmp_path / "kms" / "kms.db")
    con.execute("PRAGMA user_version=99")
    con.close()
    with pytest.raises(KMSInternalException):
        KMS.open(tmp_path)


def test_audit_record_per_call(tmp_path):
    with KMS.open(tmp_path) as kms:
        md = kms.create_key(ALICE, description="audited")["KeyMetadata"]
        dk = kms.generate_data_key(ALICE, md["KeyId"], key_spec="AES_256",
                                   encryption_context=CTX)
        enc = kms.encrypt(ALICE, md["Arn"], b"top secret plaintext", encryption_context=CTX)
        kms.decrypt(ALICE, enc["CiphertextBlob"], encryption_context=CTX)
        kms.decrypt(ALICE, dk["CiphertextBlob"], encryption_context=CTX)
        with pytest.raises(NotFoundException):
            kms.describe_key(ALICE, "alias/nope")
    files = trail_files(tmp_path / "audit")
    assert files and all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    raw = b"".join(f.read_bytes() for f in files)
    recs = [json.loads(line) for line in raw.splitlines()]
    # CreateKey changes state: its intent record is durable before the key commits.
    intent = recs.pop(0)
    assert (intent["eventName"], intent["eventType"]) == ("CreateKey", "CofferIntent")
    assert recs[0]["intentEventID"] == intent["eventID"]
    assert [r["eventName"] for r in recs] == [
        "CreateKey", "GenerateDataKey", "Encrypt", "Decrypt", "Decrypt", "DescribeKey"]
    gdk = recs[1]
    assert gdk["userIdentity"] == {
        "type": "IAMUser", "principalId": "alice", "arn": ALICE.principal_arn,
        "accountId": ACCT, "accessKeyId": "AKIAEXAMPLE", "userName": "alice",
        "invokedBy": "s3.amazonaws.com"}
    assert gdk["requestParameters"] == {"keyId": md["KeyId"], "keySpec": "AES_256",
                                        "encryptionContext": CTX}
    assert gdk["responseElements"] is None and gdk["readOnly"] is True
    assert gdk["resources"] == [{"accountId": ACCT, "type": "AWS::KMS::Key", "ARN": md["Arn"]}]
    for key in ("eventTime", "eventID", "awsRegion"):
        assert gdk[key]
    assert (gdk["eventSource"], gdk["eventType"], gdk["requestID"], gdk["sourceIPAddress"],
            gdk["userAgent"], gdk["recipientAccountId"], gdk["managementEvent"]) == (
        "kms.amazonaws.com", "AwsApiCall", "req-42", "192.0.2.1", "aws-cli/2", ACCT, True)
    assert recs[3]["requestParameters"] == {"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                                            "encryptionContext": CTX}
    assert recs[0]["responseElements"]["keyMetadata"]["keyId"] == md["KeyId"]
    assert recs[0]["readOnly"] is False
    assert recs[-1]["errorCode"] == "NotFoundException" and "alias/nope" in recs[-1]["errorMessage"]
    assert len({r["eventID"] for r in recs}) == len(recs)
    for secret in (dk["Plaintext"], dk["CiphertextBlob"], enc["CiphertextBlob"],
                   b"top secret plaintext"):
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form not in raw


def test_audit_log_concurrent_appends_are_whole_lines(tmp_path):
    import threading

    from kms.audit import AuditEvent, JSONLinesSink
    sink = JSONLinesSink(tmp_path / "a.jsonl")

    def worker(n: int) -> None:
        for i in range(50):
            sink.emit(AuditEvent(event_name="Decrypt", event_time=0.0, region="us-east-1",
                                 event_id=f"{n}-{i}", request_id="r", read_only=True,
                                 account_id=ACCT, principal_arn=ALICE.principal_arn,
                                 request_parameters={"pad": "x" * 3000}))
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["eventID"] for x in lines) == sorted(
        f"{n}-{i}" for n in range(8) for i in range(50))
