"""SSE-C and SSE-S3 on the wire: boto3 and the aws CLI against a real ``coffer serve``."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.wire.conftest import make_client
from tests.wire.sse_helpers import (MiB, SEG, aws, body_of, error_of, new_key,
                                     sidecar, sse_record)

pytestmark = pytest.mark.wire


def ssec(key: bytes, prefix: str = "") -> dict:
    return {f"{prefix}SSECustomerAlgorithm": "AES256", f"{prefix}SSECustomerKey": key}


KEY1 = os.urandom(32)
KEY2 = os.urandom(32)


def all_bytes(root) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def test_ssec_put_get_head_ranges_and_errors(tls_server, s3_tls, tls_bucket):
    b = tls_bucket
    for size in (0, 1, SEG - 1, SEG, SEG + 1):
        data = os.urandom(size)
        put = s3_tls.put_object(Bucket=b, Key=f"c{size}", Body=data, **ssec(KEY1))
        assert put["SSECustomerAlgorithm"] == "AES256"
        assert put["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(KEY1).digest()).decode()
        assert "ServerSideEncryption" not in put
        etag = put["ETag"].strip('"')
        assert len(etag) == 32 and (size == 0 or etag != hashlib.md5(data).hexdigest())
        got = s3_tls.get_object(Bucket=b, Key=f"c{size}", **ssec(KEY1))
        assert got["Body"].read() == data and got["ETag"] == put["ETag"]
        head = s3_tls.head_object(Bucket=b, Key=f"c{size}", **ssec(KEY1))
        assert head["ContentLength"] == size and head["SSECustomerAlgorithm"] == "AES256"
        if size > SEG:
            assert body_of(s3_tls, b, f"c{size}", Range=f"bytes={SEG - 1}-{SEG}",
                           **ssec(KEY1)) == data[SEG - 1:SEG + 1]
    # Only a salted HMAC of the key is stored.
    rec = sse_record(tls_server, b, f"c{SEG}")
    assert rec["mode"] == "SSE-C"
    salt = base64.b64decode(rec["customer_key_salt"])
    assert rec["customer_key_hmac"] == hmac.new(salt, KEY1, hashlib.sha256).hexdigest()
    assert "wrapped_key" not in rec and "key_arn" not in rec
    for name, raw in all_bytes(tls_server.data_dir):
        for form in (KEY1, KEY1.hex().encode(), base64.b64encode(KEY1)):
            assert form not in raw, name

    # GET without the key: 400 InvalidRequest; wrong key: 403; HEAD errors have no body.
    with pytest.raises(ClientError) as ei:
        s3_tls.get_object(Bucket=b, Key=f"c{SEG}")
    assert error_of(ei.value) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as ei:
        s3_tls.get_object(Bucket=b, Key=f"c{SEG}", **ssec(KEY2))
    assert error_of(ei.value) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as ei:
        s3_tls.head_object(Bucket=b, Key=f"c{SEG}", **ssec(KEY2))
    assert error_of(ei.value)[1] == 403
    with pytest.raises(ClientError) as ei:
        s3_tls.head_object(Bucket=b, Key=f"c{SEG}")
    assert error_of(ei.value)[1] == 400
    # Bad key MD5 (sent as is, botocore leaves it alone when given).
    bad = {"SSECustomerAlgorithm": "AES256",
           "SSECustomerKey": base64.b64encode(KEY1).decode(),
           "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(KEY2).digest()).decode()}
    with pytest.raises(ClientError) as ei:
        s3_tls.put_object(Bucket=b, Key="bad", Body=b"x", **bad)
    assert error_of(ei.value) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as ei:
        s3_tls.get_object(Bucket=b, Key=f"c{SEG}", **bad)
    assert error_of(ei.value) == ("InvalidArgument", 400)
    # A short key.
    with pytest.raises(ClientError) as ei:
        s3_tls.put_object(Bucket=b, Key="bad", Body=b"x", **ssec(os.urandom(16)))
    assert error_of(ei.value) == ("InvalidArgument", 400)
    # SSE-C combined with SSE.
    with pytest.raises(ClientError) as ei:
        s3_tls.put_object(Bucket=b, Key="bad", Body=b"x", ServerSideEncryption="aws:kms",
                          **ssec(KEY1))
    assert error_of(ei.value) == ("InvalidArgument", 400)
    # SSE-C key on an object that is not SSE-C.
    s3_tls.put_object(Bucket=b, Key="s3obj", Body=b"x")
    with pytest.raises(ClientError) as ei:
        s3_tls.get_object(Bucket=b, Key="s3obj", **ssec(KEY1))
    assert error_of(ei.value)[1] == 400


def test_ssec_refused_over_plain_http(s3, bucket):
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="c", Body=b"x", **ssec(KEY1))
    assert error_of(ei.value) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as ei:
        s3.create_multipart_upload(Bucket=bucket, Key="c", **ssec(KEY1))
    assert error_of(ei.value) == ("InvalidRequest", 400)


def test_ssec_over_http_when_allowed(plain_server):
    """COFFER_SSE_C_ALLOW_HTTP / --sse-c-allow-http lifts the HTTPS requirement."""
    s3 = make_client(plain_server)
    s3.create_bucket(Bucket="ssec-http")
    s3.put_object(Bucket="ssec-http", Key="c", Body=b"over http", **ssec(KEY1))
    assert body_of(s3, "ssec-http", "c", **ssec(KEY1)) == b"over http"
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket="ssec-http", Key="c", **ssec(KEY2))
    assert error_of(ei.value) == ("AccessDenied", 403)


def test_ssec_multipart_same_key_every_part(tls_server, s3_tls, tls_bucket):
    b = tls_bucket
    p1, p2 = os.urandom(5 * MiB + 3), os.urandom(SEG + 1)
    mp = s3_tls.create_multipart_upload(Bucket=b, Key="m", **ssec(KEY1))
    assert mp["SSECustomerAlgorithm"] == "AES256"
    uid = mp["UploadId"]
    # A part without the key, or with another key, is refused.
    with pytest.raises(ClientError) as ei:
        s3_tls.upload_part(Bucket=b, Key="m", UploadId=uid, PartNumber=1, Body=p1)
    assert error_of(ei.value) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as ei:
        s3_tls.upload_part(Bucket=b, Key="m", UploadId=uid, PartNumber=1, Body=p1,
                           **ssec(KEY2))
    assert error_of(ei.value) == ("AccessDenied", 403)
    e1 = s3_tls.upload_part(Bucket=b, Key="m", UploadId=uid, PartNumber=1, Body=p1,
                            **ssec(KEY1))
    assert e1["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(KEY1).digest()).decode()
    e2 = s3_tls.upload_part(Bucket=b, Key="m", UploadId=uid, PartNumber=2, Body=p2,
                            **ssec(KEY1))
    s3_tls.complete_multipart_upload(Bucket=b, Key="m", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1["ETag"]}, {"PartNumber": 2, "ETag": e2["ETag"]}]})
    data = p1 + p2
    assert body_of(s3_tls, b, "m", **ssec(KEY1)) == data
    edge = len(p1)
    for a, z in [(edge - 1, edge), (edge - SEG, edge + SEG), (edge, len(data) - 1)]:
        assert body_of(s3_tls, b, "m", Range=f"bytes={a}-{z}", **ssec(KEY1)) == data[a:z + 1]
    with pytest.raises(ClientError) as ei:
        s3_tls.get_object(Bucket=b, Key="m", **ssec(KEY2))
    assert error_of(ei.value) == ("AccessDenied", 403)


def test_ssec_copy_rotation_and_to_kms(tls_server, s3_tls, tls_bucket):
    b = tls_bucket
    kms = make_client(tls_server, "kms")
    data = os.urandom(SEG + 9)
    s3_tls.put_object(Bucket=b, Key="c", Body=data, **ssec(KEY1))
    # Copy without the source key: refused.
    with pytest.raises(ClientError) as ei:
        s3_tls.copy_object(Bucket=b, Key="x", CopySource={"Bucket": b, "Key": "c"})
    assert error_of(ei.value) == ("InvalidRequest", 400)
    # Rotate the customer key in place: copy onto itself with both keys.
    s3_tls.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "c"},
                       **ssec(KEY1, "CopySource"), **ssec(KEY2))
    with pytest.raises(ClientError) as ei:
        s3_tls.get_object(Bucket=b, Key="c", **ssec(KEY1))
    assert error_of(ei.value) == ("AccessDenied", 403)
    assert body_of(s3_tls, b, "c", **ssec(KEY2)) == data
    # SSE-C source -> SSE-KMS destination.
    key = new_key(kms)
    out = s3_tls.copy_object(Bucket=b, Key="k", CopySource={"Bucket": b, "Key": "c"},
                             ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"],
                             **ssec(KEY2, "CopySource"))
    assert out["SSEKMSKeyId"] == key["Arn"]
    assert body_of(s3_tls, b, "k") == data
    # SSE-KMS source -> SSE-C destination via UploadPartCopy.
    mp = s3_tls.create_multipart_upload(Bucket=b, Key="pc", **ssec(KEY1))
    r = s3_tls.upload_part_copy(Bucket=b, Key="pc", UploadId=mp["UploadId"], PartNumber=1,
                                CopySource={"Bucket": b, "Key": "k"},
                                CopySourceRange=f"bytes={SEG - 1}-{SEG + 8}", **ssec(KEY1))
    s3_tls.complete_multipart_upload(Bucket=b, Key="pc", UploadId=mp["UploadId"],
                                     MultipartUpload={"Parts": [
                                         {"PartNumber": 1,
                                          "ETag": r["CopyPartResult"]["ETag"]}]})
    assert body_of(s3_tls, b, "pc", **ssec(KEY1)) == data[SEG - 1:]


def test_aws_cli_ssec_and_sse_s3(tls_server, tmp_path):
    b = f"clic-{uuid.uuid4().hex[:8]}"
    aws(tls_server, "s3", "mb", f"s3://{b}")
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(SEG + 1))
    ckey = uuid.uuid4().hex                      # 32 ASCII bytes, as the CLI takes it
    aws(tls_server, "s3", "cp", str(src), f"s3://{b}/f.bin", "--sse-c", "AES256",
        "--sse-c-key", ckey)
    head = json.loads(aws(tls_server, "s3api", "head-object", "--bucket", b, "--key", "f.bin",
                          "--sse-customer-algorithm", "AES256", "--sse-customer-key",
                          ckey).stdout)
    assert head["SSECustomerAlgorithm"] == "AES256" and head["ContentLength"] == SEG + 1
    out = tmp_path / "out.bin"
    aws(tls_server, "s3", "cp", f"s3://{b}/f.bin", str(out), "--sse-c", "AES256",
        "--sse-c-key", ckey)
    assert out.read_bytes() == src.read_bytes()
    fail = aws(tls_server, "s3", "cp", f"s3://{b}/f.bin", str(tmp_path / "no.bin"),
               check=False)
    assert fail.returncode != 0
    aws(tls_server, "s3", "cp", str(src), f"s3://{b}/s3.bin", "--sse", "AES256")
    head = json.loads(aws(tls_server, "s3api", "head-object", "--bucket", b, "--key",
                          "s3.bin").stdout)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ETag"].strip('"') == hashlib.md5(src.read_bytes()).hexdigest()
    aws(tls_server, "s3", "rb", "--force", f"s3://{b}")


def test_sse_s3_is_default_and_uses_a_service_key(server, s3, bucket):
    kms = make_client(server, "kms")
    put = s3.put_object(Bucket=bucket, Key="d", Body=b"hello world")
    assert put["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in put
    assert put["ETag"] == '"5eb63bbbe01eeed093cb22bb8f5acdc3"'     # SSE-S3 keeps the MD5
    rec = sse_record(server, bucket, "d")
    assert rec["mode"] == "AES256" and rec["wrapped_key"]
    assert rec["context"] == {"aws:s3:arn": f"arn:aws:s3:::{bucket}/d"}
    # The key is the gateway's, in a reserved account: the caller can neither see nor use it.
    own = {k["KeyArn"] for k in kms.list_keys()["Keys"]}
    assert rec["key_arn"] not in own
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=base64.b64decode(rec["wrapped_key"]),
                    EncryptionContext=rec["context"])
    head = s3.head_object(Bucket=bucket, Key="d")
    assert head["ServerSideEncryption"] == "AES256" and head["ETag"] == put["ETag"]
    assert body_of(s3, bucket, "d", Range="bytes=6-10") == b"world"
    assert sidecar(server, bucket, "d")["size"] == 11
