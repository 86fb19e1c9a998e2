"""SSE-KMS on the wire: boto3 and the aws CLI against a real ``coffer serve``, keys made through
the KMS API on the same endpoint. Also the helpers the other ``test_sse_*`` modules share."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.wire.conftest import make_client
from tests.wire.sse_helpers import (MiB, SEG, audit_events, aws, b64json, body_of, crypto_calls,
                                    error_of, new_key, sidecar, sse_record, with_headers)

pytestmark = pytest.mark.wire

@pytest.fixture(scope="module")
def photos(kms):
    """A customer key with the alias alias/photos-<random>."""
    alias = f"alias/photos-{uuid.uuid4().hex[:8]}"
    meta = new_key(kms, alias)
    return {"arn": meta["Arn"], "id": meta["KeyId"], "alias": alias}


# -- the aws CLI --------------------------------------------------------------------------------

def test_aws_cli_big_multipart_sse_kms_alias(server, photos, tmp_path):
    b = f"cli-{uuid.uuid4().hex[:8]}"
    aws(server, "s3", "mb", f"s3://{b}")
    big = tmp_path / "big.iso"
    data = os.urandom(100 * MiB + 12345)
    big.write_bytes(data)
    before = len(crypto_calls(audit_events(server), photos["arn"]))
    aws(server, "s3", "cp", str(big), f"s3://{b}/", "--sse", "aws:kms",
        "--sse-kms-key-id", photos["alias"])
    head = json.loads(aws(server, "s3api", "head-object", "--bucket", b, "--key",
                          "big.iso").stdout)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == photos["arn"]
    assert head["ContentLength"] == len(data)
    rec = sse_record(server, b, "big.iso")
    assert rec["mode"] == "aws:kms" and rec["key_arn"] == photos["arn"]
    assert len(rec["parts"]) > 1                      # it really was a multipart upload
    # Every part is its own stream under the one data key fixed at Create.
    salts = {p["stream"]["salt"] for p in rec["parts"]}
    assert len(salts) == len(rec["parts"])
    gdk = [e for e in crypto_calls(audit_events(server), photos["arn"])[before:]
           if e["eventName"] == "GenerateDataKey"]
    assert len(gdk) == 1
    back = tmp_path / "back.iso"
    aws(server, "s3", "cp", f"s3://{b}/big.iso", str(back))
    assert back.read_bytes() == data
    # A ranged read across a part boundary, through the CLI.
    part = rec["parts"][0]["plain"]
    out = tmp_path / "range.bin"
    aws(server, "s3api", "get-object", "--bucket", b, "--key", "big.iso", "--range",
        f"bytes={part - 10}-{part + 9}", str(out))
    assert out.read_bytes() == data[part - 10:part + 10]
    aws(server, "s3", "rb", "--force", f"s3://{b}")


def test_aws_cli_put_object_context_bucket_key_and_sse_s3(server, photos, tmp_path):
    b = f"cli-{uuid.uuid4().hex[:8]}"
    aws(server, "s3", "mb", f"s3://{b}")
    src = tmp_path / "small.txt"
    src.write_bytes(b"context and bucket key\n")
    ctx = b64json({"department": "photos", "project": "x"})
    put = json.loads(aws(server, "s3api", "put-object", "--bucket", b, "--key", "c.txt",
                         "--body", str(src), "--server-side-encryption", "aws:kms",
                         "--ssekms-key-id", photos["id"], "--ssekms-encryption-context", ctx,
                         "--bucket-key-enabled").stdout)
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["SSEKMSKeyId"] == photos["arn"]
    assert put["BucketKeyEnabled"] is True
    rec = sse_record(server, b, "c.txt")
    assert rec["bucket_key"] is True
    assert rec["context"] == {"department": "photos", "project": "x",
                              "aws:s3:arn": f"arn:aws:s3:::{b}"}
    assert rec["context_b64"] == ctx
    head = json.loads(aws(server, "s3api", "head-object", "--bucket", b, "--key",
                          "c.txt").stdout)
    assert head["BucketKeyEnabled"] is True and head["SSEKMSKeyId"] == photos["arn"]
    out = tmp_path / "out.txt"
    aws(server, "s3api", "get-object", "--bucket", b, "--key", "c.txt", str(out))
    assert out.read_bytes() == src.read_bytes()

    # --sse AES256 (SSE-S3) and aws:kms without key id (the account's aws/s3 key).
    aws(server, "s3", "cp", str(src), f"s3://{b}/s3.txt", "--sse", "AES256")
    head = json.loads(aws(server, "s3api", "head-object", "--bucket", b, "--key",
                          "s3.txt").stdout)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ETag"].strip('"') == hashlib.md5(src.read_bytes()).hexdigest()
    aws(server, "s3", "cp", str(src), f"s3://{b}/default-kms.txt", "--sse", "aws:kms")
    head = json.loads(aws(server, "s3api", "head-object", "--bucket", b, "--key",
                          "default-kms.txt").stdout)
    kms = make_client(server, "kms")
    managed = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert head["SSEKMSKeyId"] == managed["Arn"] and managed["KeyManager"] == "AWS"
    aws(server, "s3", "cp", f"s3://{b}/default-kms.txt", str(out))
    assert out.read_bytes() == src.read_bytes()
    aws(server, "s3", "rb", "--force", f"s3://{b}")


def test_aws_cli_bucket_encryption(server, photos, tmp_path):
    b = f"cli-{uuid.uuid4().hex[:8]}"
    aws(server, "s3", "mb", f"s3://{b}")
    conf = {"Rules": [{"ApplyServerSideEncryptionByDefault": {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": photos["alias"]},
        "BucketKeyEnabled": True}]}
    aws(server, "s3api", "put-bucket-encryption", "--bucket", b,
        "--server-side-encryption-configuration", json.dumps(conf))
    got = json.loads(aws(server, "s3api", "get-bucket-encryption", "--bucket", b).stdout)
    rule = got["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                          "KMSMasterKeyID": photos["alias"]}
    assert rule["BucketKeyEnabled"] is True
    src = tmp_path / "f.txt"
    src.write_bytes(b"default encrypted\n")
    aws(server, "s3", "cp", str(src), f"s3://{b}/f.txt")
    head = json.loads(aws(server, "s3api", "head-object", "--bucket", b, "--key",
                          "f.txt").stdout)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == photos["arn"] and head["BucketKeyEnabled"] is True
    aws(server, "s3api", "delete-bucket-encryption", "--bucket", b)
    got = json.loads(aws(server, "s3api", "get-bucket-encryption", "--bucket", b).stdout)
    rule = got["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    aws(server, "s3", "cp", str(src), f"s3://{b}/g.txt")
    head = json.loads(aws(server, "s3api", "head-object", "--bucket", b, "--key",
                          "g.txt").stdout)
    assert head["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in head
    aws(server, "s3", "rb", "--force", f"s3://{b}")


# -- boto3: PUT/GET sizes and ranges ------------------------------------------------------------

SIZES = [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG + 7]


@pytest.mark.parametrize("mode", ["aws:kms", "AES256", "bucket-key"])
def test_sizes_and_segment_ranges(s3, bucket, photos, mode, server):
    kw = {"ServerSideEncryption": "AES256"} if mode == "AES256" else \
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": photos["alias"],
         "BucketKeyEnabled": mode == "bucket-key"}
    for size in SIZES:
        data = os.urandom(size)
        key = f"o-{size}"
        put = s3.put_object(Bucket=bucket, Key=key, Body=data, **kw)
        assert put["ServerSideEncryption"] == kw["ServerSideEncryption"]
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data
        assert got["ContentLength"] == size
        assert got["ETag"] == put["ETag"]
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == size and head["ETag"] == put["ETag"]
        etag = put["ETag"].strip('"')
        assert re.fullmatch(r"[0-9a-f]{32}", etag)
        if mode == "AES256":
            assert etag == hashlib.md5(data).hexdigest()
        else:
            assert etag != hashlib.md5(data).hexdigest()
            assert head["SSEKMSKeyId"] == photos["arn"]
            assert head.get("BucketKeyEnabled", False) is (mode == "bucket-key")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
        assert [(o["Key"], o["Size"]) for o in listed] == [(key, size)]
        if size == 0:
            continue
        ranges = {(0, 0), (size - 1, size - 1), (0, size - 1)}
        if size > SEG:
            ranges |= {(SEG - 1, SEG), (SEG, SEG), (SEG - 1, SEG - 1), (SEG, size - 1),
                       (1, SEG)}
        if size > 2 * SEG:
            ranges |= {(SEG - 3, 2 * SEG + 3), (2 * SEG, size - 1)}
        for a, z in sorted(ranges):
            r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={a}-{z}")
            assert r["Body"].read() == data[a:z + 1], (size, a, z)
            assert r["ContentRange"] == f"bytes {a}-{z}/{size}"
        suffix = min(size, 5)
        assert body_of(s3, bucket, key, Range=f"bytes=-{suffix}") == data[-suffix:]
        assert body_of(s3, bucket, key, Range=f"bytes={size - 1}-") == data[-1:]


def test_default_context_and_user_context(s3, bucket, photos, server):
    user = {"team": "photos", "ü": "välue"}
    ctx = b64json(user)
    put = s3.put_object(Bucket=bucket, Key="k/x.txt", Body=b"ctx", ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=photos["arn"], SSEKMSEncryptionContext=ctx)
    assert put["SSEKMSEncryptionContext"] == ctx
    rec = sse_record(server, bucket, "k/x.txt")
    assert rec["context"] == {**user, "aws:s3:arn": f"arn:aws:s3:::{bucket}/k/x.txt"}
    assert rec["context_b64"] == ctx            # stored verbatim, as sent
    assert rec["key_arn"] == photos["arn"] and rec["wrapped_key"]
    assert rec["stream"]["format"] == "coffer-sse/1"
    # The KMS saw the full context.
    gdk = [e for e in audit_events(server) if e["eventName"] == "GenerateDataKey"][-1]
    assert gdk["requestParameters"]["encryptionContext"] == rec["context"]
    assert body_of(s3, bucket, "k/x.txt") == b"ctx"
    dec = [e for e in audit_events(server) if e["eventName"] == "Decrypt"][-1]
    assert dec["requestParameters"]["encryptionContext"] == rec["context"]

    # No user context: just aws:s3:arn = the object ARN.
    s3.put_object(Bucket=bucket, Key="plain", Body=b"p", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=photos["id"])
    assert sse_record(server, bucket, "plain")["context"] == {
        "aws:s3:arn": f"arn:aws:s3:::{bucket}/plain"}
    # A user-supplied aws:s3:arn must be the object ARN.
    s3.put_object(Bucket=bucket, Key="same", Body=b"s", ServerSideEncryption="aws:kms",
                  SSEKMSEncryptionContext=b64json({"aws:s3:arn": f"arn:aws:s3:::{bucket}/same"}))
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="other", Body=b"o", ServerSideEncryption="aws:kms",
                      SSEKMSEncryptionContext=b64json({"aws:s3:arn": "arn:aws:s3:::x/y"}))
    assert error_of(ei.value) == ("InvalidArgument", 400)
    # A malformed context is InvalidArgument.
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"b", ServerSideEncryption="aws:kms",
                      SSEKMSEncryptionContext=base64.b64encode(b"[1,2]").decode())
    assert error_of(ei.value) == ("InvalidArgument", 400)


def test_aws_s3_managed_key_created_on_first_use(plain_server):
    """``aws:kms`` without a key id: the account's aws/s3 key is made on first use, then
    reused."""
    s3 = make_client(plain_server)
    kms = make_client(plain_server, "kms")
    s3.create_bucket(Bucket="first-use")
    aliases = [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert "alias/aws/s3" not in aliases
    put = s3.put_object(Bucket="first-use", Key="a", Body=b"a", ServerSideEncryption="aws:kms")
    managed = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert managed["KeyManager"] == "AWS"
    assert put["SSEKMSKeyId"] == managed["Arn"]
    put2 = s3.put_object(Bucket="first-use", Key="b", Body=b"b", ServerSideEncryption="aws:kms")
    assert put2["SSEKMSKeyId"] == managed["Arn"]
    assert [a["AliasName"] for a in kms.list_aliases()["Aliases"]].count("alias/aws/s3") == 1
    assert body_of(s3, "first-use", "a") == b"a"


# -- errors ---------------------------------------------------------------------------------------

def test_unknown_disabled_and_pending_deletion_keys(s3, kms, bucket):
    put = dict(Bucket=bucket, Body=b"x", ServerSideEncryption="aws:kms")
    for key_id in ("alias/does-not-exist", str(uuid.uuid4()),
                   f"arn:aws:kms:us-east-1:{'1' * 12}:key/{uuid.uuid4()}"):
        with pytest.raises(ClientError) as ei:
            s3.put_object(Key="nf", SSEKMSKeyId=key_id, **put)
        assert error_of(ei.value) == ("KMS.NotFoundException", 400), key_id

    disabled = new_key(kms)
    s3.put_object(Key="dis", SSEKMSKeyId=disabled["KeyId"], **put)
    kms.disable_key(KeyId=disabled["KeyId"])
    with pytest.raises(ClientError) as ei:
        s3.put_object(Key="dis2", SSEKMSKeyId=disabled["KeyId"], **put)
    assert error_of(ei.value) == ("KMS.DisabledException", 400)
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="dis")
    assert error_of(ei.value) == ("KMS.DisabledException", 400)
    # ... and copying it (the source must be decrypted) fails the same way.
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="dis-copy", CopySource={"Bucket": bucket, "Key": "dis"})
    assert error_of(ei.value) == ("KMS.DisabledException", 400)
    kms.enable_key(KeyId=disabled["KeyId"])
    assert body_of(s3, bucket, "dis") == b"x"

    pending = new_key(kms)
    s3.put_object(Key="pend", SSEKMSKeyId=pending["Arn"], **put)
    kms.schedule_key_deletion(KeyId=pending["KeyId"], PendingWindowInDays=7)
    with pytest.raises(ClientError) as ei:
        s3.put_object(Key="pend2", SSEKMSKeyId=pending["Arn"], **put)
    assert error_of(ei.value) == ("KMS.KMSInvalidStateException", 400)
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="pend")
    assert error_of(ei.value) == ("KMS.KMSInvalidStateException", 400)
    # Multipart: Create needs the key usable too.
    with pytest.raises(ClientError) as ei:
        s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="aws:kms",
                                   SSEKMSKeyId=pending["Arn"])
    assert error_of(ei.value) == ("KMS.KMSInvalidStateException", 400)
    kms.cancel_key_deletion(KeyId=pending["KeyId"])
    kms.enable_key(KeyId=pending["KeyId"])
    assert body_of(s3, bucket, "pend") == b"x"


def test_sse_headers_on_get_head_and_key_id_without_kms(server, s3, bucket, photos):
    s3.put_object(Bucket=bucket, Key="o", Body=b"o", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=photos["id"])
    for header, value in [("x-amz-server-side-encryption", "aws:kms"),
                          ("x-amz-server-side-encryption-aws-kms-key-id", photos["arn"])]:
        getter = with_headers(make_client(server), "GetObject", {header: value})
        with pytest.raises(ClientError) as ei:
            getter.get_object(Bucket=bucket, Key="o")
        assert error_of(ei.value)[1] == 400
        assert ei.value.response["Error"]["Code"] == "InvalidArgument"
        header_client = with_headers(make_client(server), "HeadObject", {header: value})
        with pytest.raises(ClientError) as ei:
            header_client.head_object(Bucket=bucket, Key="o")
        assert error_of(ei.value)[1] == 400
    # A key id (or a context) without aws:kms.
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="n", Body=b"n", SSEKMSKeyId=photos["id"])
    assert error_of(ei.value) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="n", Body=b"n", ServerSideEncryption="AES256",
                      SSEKMSKeyId=photos["id"])
    assert error_of(ei.value) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as ei:
        s3.create_multipart_upload(Bucket=bucket, Key="n", SSEKMSKeyId=photos["id"])
    assert error_of(ei.value) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="n", Body=b"n", ServerSideEncryption="aws:kms:dsse")
    assert error_of(ei.value)[1] == 400
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="n")


# -- bucket default encryption -------------------------------------------------------------------

def test_bucket_encryption_boto3(s3, bucket, photos, server):
    got = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert got["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": photos["arn"]}}]})
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
        "Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == photos["arn"]
    assert rule.get("BucketKeyEnabled", False) is False
    put = s3.put_object(Bucket=bucket, Key="d", Body=b"d")
    assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"] == photos["arn"]
    assert sse_record(server, bucket, "d")["bucket_key"] is False
    # Multipart and copy without headers take the bucket default too.
    mp = s3.create_multipart_upload(Bucket=bucket, Key="m")
    assert mp["ServerSideEncryption"] == "aws:kms" and mp["SSEKMSKeyId"] == photos["arn"]
    s3.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=mp["UploadId"])
    # Explicit headers still win over the default.
    put = s3.put_object(Bucket=bucket, Key="e", Body=b"e", ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    # AES256 default.
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    put = s3.put_object(Bucket=bucket, Key="f", Body=b"f")
    assert put["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in put
    assert put["ETag"].strip('"') == hashlib.md5(b"f").hexdigest()
    # A key id with AES256 is refused.
    with pytest.raises(ClientError) as ei:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256",
                                                   "KMSMasterKeyID": photos["arn"]}}]})
    assert error_of(ei.value)[1] == 400
    s3.delete_bucket_encryption(Bucket=bucket)
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
        "Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def test_get_bucket_encryption_unconfigured_none_mode(plain_server):
    s3 = make_client(plain_server)
    s3.create_bucket(Bucket="legacy")
    with pytest.raises(ClientError) as ei:
        s3.get_bucket_encryption(Bucket="legacy")
    assert error_of(ei.value) == ("ServerSideEncryptionConfigurationNotFoundError", 404)
    put = s3.put_object(Bucket="legacy", Key="u", Body=b"unencrypted")
    assert "ServerSideEncryption" not in put
    assert "sse" not in sidecar(plain_server, "legacy", "u")["meta"]
    s3.put_bucket_encryption(Bucket="legacy", ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
        "BucketKeyEnabled": True}]})
    put = s3.put_object(Bucket="legacy", Key="k", Body=b"now encrypted")
    assert put["ServerSideEncryption"] == "aws:kms" and put["BucketKeyEnabled"] is True
    s3.delete_bucket_encryption(Bucket="legacy")
    with pytest.raises(ClientError) as ei:
        s3.get_bucket_encryption(Bucket="legacy")
    assert error_of(ei.value)[0] == "ServerSideEncryptionConfigurationNotFoundError"
    assert body_of(s3, "legacy", "k") == b"now encrypted"


# -- Bucket Keys -------------------------------------------------------------------------------------

def test_bucket_keys_cut_kms_calls(s3, kms, bucket, server):
    key = new_key(kms)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": key["Arn"]},
        "BucketKeyEnabled": True}]})
    before = len(crypto_calls(audit_events(server), key["Arn"]))
    for i in range(20):
        put = s3.put_object(Bucket=bucket, Key=f"bk/{i}", Body=f"object {i}".encode())
        assert put["BucketKeyEnabled"] is True
    for i in range(20):
        assert body_of(s3, bucket, f"bk/{i}") == f"object {i}".encode()
    calls = crypto_calls(audit_events(server), key["Arn"])[before:]
    assert len(calls) <= 2, [c["eventName"] for c in calls]
    # The KMS saw the bucket ARN as context, as CloudTrail does with Bucket Keys.
    for c in calls:
        assert c["requestParameters"]["encryptionContext"] == {
            "aws:s3:arn": f"arn:aws:s3:::{bucket}"}
    # Per-object keys still differ: each object has its own derivation salt.
    salts = {sse_record(server, bucket, f"bk/{i}")["dk_salt"] for i in range(20)}
    assert len(salts) == 20

    # Without Bucket Keys: one GenerateDataKey per PUT.
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": key["Arn"]}}]})
    before = len(crypto_calls(audit_events(server), key["Arn"]))
    for i in range(20):
        s3.put_object(Bucket=bucket, Key=f"nobk/{i}", Body=b"x")
    calls = crypto_calls(audit_events(server), key["Arn"])[before:]
    assert len(calls) == 20


# -- multipart ------------------------------------------------------------------------------------

def _upload(s3, bucket, key, parts: list[bytes], **create) -> dict:
    mp = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)
    etags = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=mp["UploadId"], PartNumber=n,
                           Body=data)
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mp["UploadId"],
                                        MultipartUpload={"Parts": etags})
    return {"create": mp, "complete": done}


def test_multipart_sse_kms_ranges_across_parts(s3, bucket, photos, server):
    p1, p2, p3 = os.urandom(5 * MiB + 1), os.urandom(5 * MiB), os.urandom(SEG + 1)
    data = p1 + p2 + p3
    before = len(crypto_calls(audit_events(server), photos["arn"]))
    res = _upload(s3, bucket, "mp.bin", [p1, p2, p3], ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=photos["alias"],
                  SSEKMSEncryptionContext=b64json({"purpose": "mp"}))
    assert res["create"]["SSEKMSKeyId"] == photos["arn"]
    assert res["complete"]["ServerSideEncryption"] == "aws:kms"
    calls = crypto_calls(audit_events(server), photos["arn"])[before:]
    assert [c["eventName"] for c in calls].count("GenerateDataKey") == 1   # fixed at Create
    rec = sse_record(server, bucket, "mp.bin")
    assert [p["n"] for p in rec["parts"]] == [1, 2, 3]
    assert [p["plain"] for p in rec["parts"]] == [len(p1), len(p2), len(p3)]
    assert len({p["stream"]["salt"] for p in rec["parts"]}) == 3
    assert rec["context"] == {"purpose": "mp", "aws:s3:arn": f"arn:aws:s3:::{bucket}/mp.bin"}
    head = s3.head_object(Bucket=bucket, Key="mp.bin")
    assert head["ContentLength"] == len(data) and head["SSEKMSKeyId"] == photos["arn"]
    assert body_of(s3, bucket, "mp.bin") == data
    b1, b2 = len(p1), len(p1) + len(p2)
    for a, z in [(b1 - 1, b1), (b1, b1), (b1 - 1, b1 - 1), (b1 - 100, b2 + 100),
                 (b2 - 1, b2), (b2, len(data) - 1), (0, len(data) - 1),
                 (5 * MiB - SEG, 5 * MiB + 1), (b1 + SEG - 1, b1 + SEG),
                 (b2 + SEG - 1, b2 + SEG), (SEG - 1, b2 + SEG)]:
        assert body_of(s3, bucket, "mp.bin", Range=f"bytes={a}-{z}") == data[a:z + 1], (a, z)
    # partNumber reads address plaintext parts (not the stored, tag-bearing ciphertext).
    assert body_of(s3, bucket, "mp.bin", PartNumber=2) == p2
    part1 = s3.head_object(Bucket=bucket, Key="mp.bin", PartNumber=1)
    assert part1["ContentLength"] == len(p1) and part1["PartsCount"] == 3
    assert body_of(s3, bucket, "mp.bin", PartNumber=3) == p3


def test_multipart_tolerates_kms_headers_on_parts_and_uses_upload_key(server, s3, bucket,
                                                                     photos, kms):
    """s3-tests send the aws:kms headers on UploadPart as well: tolerate them, and the part is
    still under the upload's data key (not a new key)."""
    other = new_key(kms)
    mp = s3.create_multipart_upload(Bucket=bucket, Key="mk", ServerSideEncryption="aws:kms",
                                    SSEKMSKeyId=photos["arn"])
    part_client = with_headers(make_client(server), "UploadPart", {
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": other["Arn"]})
    p1, p2 = os.urandom(5 * MiB), b"tail"
    e1 = part_client.upload_part(Bucket=bucket, Key="mk", UploadId=mp["UploadId"], PartNumber=1,
                                 Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mk", UploadId=mp["UploadId"], PartNumber=2,
                        Body=p2)
    assert e2["ServerSideEncryption"] == "aws:kms" and e2["SSEKMSKeyId"] == photos["arn"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mk", UploadId=mp["UploadId"],
                                 MultipartUpload={"Parts": [
                                     {"PartNumber": 1, "ETag": e1},
                                     {"PartNumber": 2, "ETag": e2["ETag"]}]})
    assert sse_record(server, bucket, "mk")["key_arn"] == photos["arn"]
    assert body_of(s3, bucket, "mk") == p1 + p2


# -- copy -------------------------------------------------------------------------------------

def test_copy_reencrypts_under_destination_settings(s3, kms, bucket, photos, server):
    data = os.urandom(SEG + 5)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=photos["arn"], SSEKMSEncryptionContext=b64json({"a": "b"}))
    src_rec = sse_record(server, bucket, "src")
    # No headers: the destination bucket's default (SSE-S3 here), not the source's key.
    out = s3.copy_object(Bucket=bucket, Key="to-s3", CopySource={"Bucket": bucket, "Key": "src"})
    assert out["ServerSideEncryption"] == "AES256"
    assert out["CopyObjectResult"]["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert body_of(s3, bucket, "to-s3") == data
    # To another key; the source's extra context is not carried over.
    other = new_key(kms)
    out = s3.copy_object(Bucket=bucket, Key="to-kms", CopySource={"Bucket": bucket, "Key": "src"},
                         ServerSideEncryption="aws:kms", SSEKMSKeyId=other["KeyId"])
    assert out["SSEKMSKeyId"] == other["Arn"]
    rec = sse_record(server, bucket, "to-kms")
    assert rec["key_arn"] == other["Arn"]
    assert rec["context"] == {"aws:s3:arn": f"arn:aws:s3:::{bucket}/to-kms"}
    assert rec["wrapped_key"] != src_rec["wrapped_key"]
    assert body_of(s3, bucket, "to-kms", Range=f"bytes={SEG - 2}-{SEG + 1}") == \
        data[SEG - 2:SEG + 2]
    # Re-keying in place: copy onto itself with new encryption settings.
    with pytest.raises(ClientError) as ei:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_of(ei.value) == ("InvalidRequest", 400)
    out = s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                         ServerSideEncryption="aws:kms", SSEKMSKeyId=other["Arn"],
                         BucketKeyEnabled=True)
    assert out["SSEKMSKeyId"] == other["Arn"] and out["BucketKeyEnabled"] is True
    rec = sse_record(server, bucket, "src")
    assert rec["key_arn"] == other["Arn"] and rec["bucket_key"] is True
    assert rec["context"] == {"aws:s3:arn": f"arn:aws:s3:::{bucket}"}
    # The old key can now be disabled: the object no longer needs it.
    kms.disable_key(KeyId=photos["id"])
    try:
        assert body_of(s3, bucket, "src") == data
    finally:
        kms.enable_key(KeyId=photos["id"])
    out = s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                         ServerSideEncryption="AES256")
    assert out["ServerSideEncryption"] == "AES256"
    assert sse_record(server, bucket, "src")["mode"] == "AES256"
    assert body_of(s3, bucket, "src") == data


def test_upload_part_copy_reencrypts(s3, kms, bucket, photos, server):
    src = os.urandom(6 * MiB + 3)
    s3.put_object(Bucket=bucket, Key="s", Body=src, ServerSideEncryption="AES256")
    other = new_key(kms)
    mp = s3.create_multipart_upload(Bucket=bucket, Key="d", ServerSideEncryption="aws:kms",
                                    SSEKMSKeyId=other["Arn"])
    r1 = s3.upload_part_copy(Bucket=bucket, Key="d", UploadId=mp["UploadId"], PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "s"},
                             CopySourceRange=f"bytes=0-{5 * MiB}")
    assert r1["ServerSideEncryption"] == "aws:kms" and r1["SSEKMSKeyId"] == other["Arn"]
    r2 = s3.upload_part_copy(Bucket=bucket, Key="d", UploadId=mp["UploadId"], PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "s"},
                             CopySourceRange=f"bytes={5 * MiB - SEG}-{len(src) - 1}")
    s3.complete_multipart_upload(Bucket=bucket, Key="d", UploadId=mp["UploadId"],
                                 MultipartUpload={"Parts": [
                                     {"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
                                     {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}]})
    expect = src[:5 * MiB + 1] + src[5 * MiB - SEG:]
    assert body_of(s3, bucket, "d") == expect
    b = 5 * MiB + 1
    assert body_of(s3, bucket, "d", Range=f"bytes={b - 3}-{b + 2}") == expect[b - 3:b + 3]
    rec = sse_record(server, bucket, "d")
    assert rec["key_arn"] == other["Arn"] and len(rec["parts"]) == 2
    for r in (r1, r2):
        assert r["CopyPartResult"]["ETag"].strip('"') not in (
            hashlib.md5(src[:b]).hexdigest(), hashlib.md5(src[5 * MiB - SEG:]).hexdigest())
