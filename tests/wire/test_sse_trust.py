"""Issue 11 (Trust), the SSE findings, on the wire: a Bucket Key never carries one principal's
rights to another (finding 1), nothing derived from the plaintext of an SSE-KMS or SSE-C object
is stored in clear or handed to a caller who may not decrypt (finding 8), SSE-C records keep no
unsalted MD5 of the customer key (finding 19).

AWS pages the expectations come from:
- S3 User Guide, "Reducing the cost of SSE-KMS with Amazon S3 Bucket Keys": the bucket-level
  key's encryption context is the bucket ARN, and CloudTrail shows KMS calls made as the
  requester with that context.
- S3 API Reference, HeadObject / GetObject ``ChecksumMode``: "If you enable checksum mode and
  the object is uploaded with a checksum and encrypted with an Key Management Service (KMS)
  key, you must have permission to use the kms:Decrypt action to retrieve the checksum."
- S3 API Reference, ListParts: "If the upload was created using a checksum algorithm, you will
  need to have permission to the kms:Decrypt action for the request to succeed"; SSE-C
  headers are "needed only when the object was created using a checksum algorithm".
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
import zlib

import pytest
from botocore.exceptions import ClientError

from tests.wire.conftest import _empty_and_delete, make_client
from tests.wire.sse_helpers import (MiB, audit_events, error_of, new_key, sidecar,
                                    sidecar_path)

pytestmark = pytest.mark.wire

ALLOW_ALL = [{"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"}]
DENY_KMS_USE = {"Effect": "Deny", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*"}


def _doc(statements: list[dict]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _user(srv, statements: list[dict], *, tls_client: bool = False):
    """A new IAM user of the server's root account -> (name, ARN, s3 client)."""
    iam = make_client(srv, "iam")
    name = f"u-{uuid.uuid4().hex[:10]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=_doc(statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, arn, make_client(srv, "s3", key["AccessKeyId"], key["SecretAccessKey"])


def _denied(fn) -> tuple[str, int]:
    with pytest.raises(ClientError) as ei:
        fn()
    return error_of(ei.value)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _files_holding(root, needles: dict[str, bytes]) -> list[tuple[str, str]]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [(str(path), name) for name, needle in needles.items() if needle in data]
    return hits


def _forms(digest: bytes) -> dict[str, bytes]:
    return {"b64": _b64(digest).encode(), "hex": digest.hex().encode(), "raw": digest}


@pytest.fixture
def kms_bucket(server, s3, kms):
    """A bucket whose default encryption is SSE-KMS with S3 Bucket Keys, under a new key."""
    key = new_key(kms)
    name = f"bk-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": key["Arn"]},
        "BucketKeyEnabled": True}]})
    yield name, key
    kms.enable_key(KeyId=key["KeyId"])
    _empty_and_delete(s3, name)


# -- finding 1: S3 Bucket Keys ----------------------------------------------------------------

def test_bucket_key_never_serves_a_denied_colleague(server, kms, kms_bucket):
    bucket, key = kms_bucket
    _, arn_a, alice = _user(server, ALLOW_ALL)
    name_b, arn_b, bob = _user(server, [*ALLOW_ALL, DENY_KMS_USE])
    put = alice.put_object(Bucket=bucket, Key="a.txt", Body=b"alice's")
    assert put["BucketKeyEnabled"] is True
    assert alice.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"alice's"
    # Alice's bucket key is warm for both writing and reading; Bob's explicit Deny still wins.
    assert _denied(lambda: bob.get_object(Bucket=bucket, Key="a.txt")) == ("AccessDenied", 403)
    assert _denied(lambda: bob.put_object(Bucket=bucket, Key="b.txt", Body=b"bob's")) == \
        ("AccessDenied", 403)
    # The KMS recorded Bob's own denied calls, with the bucket ARN as context.
    mine = [e for e in audit_events(server) if e["userIdentity"].get("arn") == arn_b]
    denied = {e["eventName"] for e in mine if e.get("errorCode") == "AccessDeniedException"}
    assert {"Decrypt", "GenerateDataKey"} <= denied, mine
    for e in mine:
        assert e["userIdentity"]["invokedBy"] == "s3.amazonaws.com"
        assert e["requestParameters"]["encryptionContext"] == {
            "aws:s3:arn": f"arn:aws:s3:::{bucket}"}
        assert key["Arn"] in json.dumps(e["resources"])
    # Alice is unaffected.
    alice.put_object(Bucket=bucket, Key="a2.txt", Body=b"again")
    assert alice.get_object(Bucket=bucket, Key="a2.txt")["Body"].read() == b"again"


def test_disabled_key_and_new_deny_stop_the_next_bucket_key_use(server, kms, kms_bucket):
    bucket, key = kms_bucket
    name_a, _, alice = _user(server, ALLOW_ALL)
    alice.put_object(Bucket=bucket, Key="x", Body=b"1")
    assert alice.get_object(Bucket=bucket, Key="x")["Body"].read() == b"1"
    kms.disable_key(KeyId=key["KeyId"])
    assert _denied(lambda: alice.put_object(Bucket=bucket, Key="y", Body=b"2")) == \
        ("KMS.DisabledException", 400)
    assert _denied(lambda: alice.get_object(Bucket=bucket, Key="x")) == \
        ("KMS.DisabledException", 400)
    kms.enable_key(KeyId=key["KeyId"])
    assert alice.get_object(Bucket=bucket, Key="x")["Body"].read() == b"1"
    # A Deny added to the warm principal wins on the very next request.
    make_client(server, "iam").put_user_policy(UserName=name_a, PolicyName="p",
                                               PolicyDocument=_doc([*ALLOW_ALL, DENY_KMS_USE]))
    assert _denied(lambda: alice.get_object(Bucket=bucket, Key="x")) == ("AccessDenied", 403)
    assert _denied(lambda: alice.put_object(Bucket=bucket, Key="z", Body=b"3")) == \
        ("AccessDenied", 403)


def test_bucket_keys_still_save_kms_calls_per_principal(server, kms_bucket):
    bucket, key = kms_bucket
    _, arn_a, alice = _user(server, ALLOW_ALL)
    for i in range(10):
        alice.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
        assert alice.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read() == b"x"
    calls = [e for e in audit_events(server) if e["userIdentity"].get("arn") == arn_a
             and e["eventName"] in ("GenerateDataKey", "Decrypt")]
    # One GenerateDataKey and one Decrypt of the bucket-level key, not one per object.
    assert sorted(e["eventName"] for e in calls) == ["Decrypt", "GenerateDataKey"], calls


# -- finding 8: checksums of SSE-KMS objects ---------------------------------------------------

def test_sse_kms_checksums_sealed_and_only_for_decrypters(server, s3, kms, bucket):
    key = new_key(kms)
    _, _, carol = _user(server, [*ALLOW_ALL, {"Effect": "Deny", "Action": "kms:Decrypt",
                                              "Resource": "*"}])
    body = os.urandom(100_000)
    sha = hashlib.sha256(body).digest()
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=key["Arn"], ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] == _b64(sha)
    assert _files_holding(server.data_dir, _forms(sha)) == []
    assert sidecar(server, bucket, "k")["meta"].get("checksums") in ({}, None)
    for call in (s3.head_object, s3.get_object):
        got = call(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
        assert got["ChecksumSHA256"] == _b64(sha)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    # Without kms:Decrypt: HEAD still answers, but never with the checksum.
    assert "ChecksumSHA256" not in carol.head_object(Bucket=bucket, Key="k")
    assert _denied(lambda: carol.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")) \
        == ("403", 403)
    assert _denied(lambda: carol.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")) \
        == ("AccessDenied", 403)


def test_sse_kms_multipart_checksums_sealed_and_list_parts_needs_decrypt(server, s3, kms,
                                                                          bucket):
    key = new_key(kms)
    _, _, carol = _user(server, [*ALLOW_ALL, {"Effect": "Deny", "Action": "kms:Decrypt",
                                              "Resource": "*"}])
    parts = [os.urandom(5 * MiB), os.urandom(1234)]
    mp = s3.create_multipart_upload(Bucket=bucket, Key="m", ServerSideEncryption="aws:kms",
                                    SSEKMSKeyId=key["Arn"], ChecksumAlgorithm="SHA256")
    uid = mp["UploadId"]
    done = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key="m", UploadId=uid, PartNumber=n, Body=data,
                           ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"] == _b64(hashlib.sha256(data).digest())
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    digests = [hashlib.sha256(p).digest() for p in parts]
    for d in digests:
        assert _files_holding(server.data_dir, _forms(d)) == []
    listed = s3.list_parts(Bucket=bucket, Key="m", UploadId=uid)["Parts"]
    assert [p["ChecksumSHA256"] for p in listed] == [_b64(d) for d in digests]
    assert _denied(lambda: carol.list_parts(Bucket=bucket, Key="m", UploadId=uid)) == \
        ("AccessDenied", 403)
    out = s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=uid,
                                       MultipartUpload={"Parts": done})
    composite = f"{_b64(hashlib.sha256(b''.join(digests)).digest())}-2"
    assert out["ChecksumSHA256"] == composite
    head = s3.head_object(Bucket=bucket, Key="m", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == composite
    assert _files_holding(server.data_dir, {"composite": composite.encode()}) == []
    assert _denied(lambda: carol.head_object(Bucket=bucket, Key="m", ChecksumMode="ENABLED")) \
        == ("403", 403)


def test_old_sidecar_with_clear_checksums_still_reads(server, s3, kms, bucket):
    key = new_key(kms)
    _, _, carol = _user(server, [*ALLOW_ALL, {"Effect": "Deny", "Action": "kms:Decrypt",
                                              "Resource": "*"}])
    crc = _b64(zlib.crc32(b"legacy").to_bytes(4, "big"))
    s3.put_object(Bucket=bucket, Key="old", Body=b"legacy", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["Arn"], ChecksumAlgorithm="CRC32")
    # Rewrite the record the way releases before issue 11 stored it: checksums in clear.
    path = sidecar_path(server, bucket, "old")
    doc = json.loads(path.read_bytes())
    doc["meta"]["sse"].pop("sealed_checksums", None)
    doc["meta"]["checksums"], doc["meta"]["checksum_type"] = {"CRC32": crc}, "FULL_OBJECT"
    path.write_text(json.dumps(doc))
    head = s3.head_object(Bucket=bucket, Key="old", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc
    assert s3.get_object(Bucket=bucket, Key="old")["Body"].read() == b"legacy"
    assert _denied(lambda: carol.head_object(Bucket=bucket, Key="old",
                                             ChecksumMode="ENABLED")) == ("403", 403)


def test_sse_s3_checksums_stay_clear(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="s", Body=b"abc", ServerSideEncryption="AES256",
                  ChecksumAlgorithm="CRC32")
    assert sidecar(server, bucket, "s")["meta"]["checksums"] == {"CRC32": "NSRBwg=="}
    assert s3.head_object(Bucket=bucket, Key="s", ChecksumMode="ENABLED")["ChecksumCRC32"] \
        == "NSRBwg=="


# -- findings 8 and 19: SSE-C ------------------------------------------------------------------

def _ssec(key: bytes) -> dict:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def _ssec_raw(key: bytes) -> dict:
    """For the operations botocore does not encode the key for (ListParts, Complete)."""
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": _b64(key),
            "SSECustomerKeyMD5": _b64(hashlib.md5(key).digest())}


def test_ssec_keeps_no_key_md5_nor_clear_checksum(tls_server, s3_tls, tls_bucket):
    b, ck = tls_bucket, os.urandom(32)
    md5 = hashlib.md5(ck).digest()
    body = os.urandom(70_000)
    sha = hashlib.sha256(body).digest()
    put = s3_tls.put_object(Bucket=b, Key="c", Body=body, ChecksumAlgorithm="SHA256",
                            **_ssec(ck))
    assert put["SSECustomerKeyMD5"] == _b64(md5) and put["ChecksumSHA256"] == _b64(sha)
    mp = s3_tls.create_multipart_upload(Bucket=b, Key="mc", ChecksumAlgorithm="SHA256",
                                        **_ssec(ck))
    assert mp["SSECustomerKeyMD5"] == _b64(md5)
    part = os.urandom(2000)
    r = s3_tls.upload_part(Bucket=b, Key="mc", UploadId=mp["UploadId"], PartNumber=1,
                           Body=part, ChecksumAlgorithm="SHA256", **_ssec(ck))
    part_sha = hashlib.sha256(part).digest()
    assert r["ChecksumSHA256"] == _b64(part_sha)
    needles = {**{f"md5-{k}": v for k, v in _forms(md5).items()},
               **{f"sha-{k}": v for k, v in _forms(sha).items()},
               **{f"part-{k}": v for k, v in _forms(part_sha).items()}}
    assert _files_holding(tls_server.data_dir, needles) == []
    rec = sidecar(tls_server, b, "c")["meta"]["sse"]
    assert "customer_key_md5" not in rec
    # Those who hold the key get everything back, the MD5 echoed from their own request.
    head = s3_tls.head_object(Bucket=b, Key="c", ChecksumMode="ENABLED", **_ssec(ck))
    assert head["SSECustomerKeyMD5"] == _b64(md5) and head["ChecksumSHA256"] == _b64(sha)
    got = s3_tls.get_object(Bucket=b, Key="c", ChecksumMode="ENABLED", **_ssec(ck))
    assert got["Body"].read() == body and got["SSECustomerKeyMD5"] == _b64(md5)
    assert _denied(lambda: s3_tls.head_object(Bucket=b, Key="c", ChecksumMode="ENABLED",
                                              **_ssec(os.urandom(32)))) == ("403", 403)
    listed = s3_tls.list_parts(Bucket=b, Key="mc", UploadId=mp["UploadId"], **_ssec_raw(ck))
    assert listed["Parts"][0]["ChecksumSHA256"] == _b64(part_sha)
    # The upload was created with a checksum algorithm: ListParts needs the key.
    assert _denied(lambda: s3_tls.list_parts(Bucket=b, Key="mc",
                                             UploadId=mp["UploadId"]))[1] == 400
    out = s3_tls.complete_multipart_upload(
        Bucket=b, Key="mc", UploadId=mp["UploadId"], **_ssec_raw(ck),
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"],
                                    "ChecksumSHA256": r["ChecksumSHA256"]}]})
    assert out["ChecksumSHA256"] == f"{_b64(hashlib.sha256(part_sha).digest())}-1"
    assert s3_tls.get_object(Bucket=b, Key="mc", **_ssec(ck))["Body"].read() == part
