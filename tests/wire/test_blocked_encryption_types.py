"""PutBucketEncryption's BlockedEncryptionTypes (S3, 2026): a bucket can refuse SSE-C writes.

S3 UG, "Blocking or unblocking SSE-C for a general purpose bucket": "When SSE-C is blocked for a
bucket, any PutObject, CopyObject, PostObject, Multipart Upload, or replication request that
specifies SSE-C encryption will be rejected with an HTTP 403 AccessDenied error. Existing SSE-C
encrypted objects in the bucket are unaffected". API_BlockedEncryptionTypes: EncryptionType is
a list of NONE | SSE-C.
"""
from __future__ import annotations

import os
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.wire.clients import error_code
from tests.wire.conftest import make_client

SSE_C_KEY = os.urandom(32)
SSE_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": SSE_C_KEY}


@pytest.fixture
def s3p(plain_server):
    return make_client(plain_server)


@pytest.fixture
def pbucket(s3p):
    name = f"blk-{uuid.uuid4().hex[:10]}"
    s3p.create_bucket(Bucket=name)
    yield name
    for o in s3p.list_objects_v2(Bucket=name).get("Contents", []):
        s3p.delete_object(Bucket=name, Key=o["Key"])
    for up in s3p.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3p.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    s3p.delete_bucket(Bucket=name)


def _block(s3, bucket: str, *types: str, algorithm: str = "AES256") -> None:
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm},
        "BlockedEncryptionTypes": {"EncryptionType": list(types)}}]})


def test_blocking_sse_c_refuses_sse_c_writes_and_keeps_old_objects_readable(s3p, pbucket):
    s3p.put_object(Bucket=pbucket, Key="old", Body=b"before", **SSE_C)
    _block(s3p, pbucket, "SSE-C")
    rule = s3p.get_bucket_encryption(Bucket=pbucket)["ServerSideEncryptionConfiguration"][
        "Rules"][0]
    assert rule["BlockedEncryptionTypes"] == {"EncryptionType": ["SSE-C"]}
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    with pytest.raises(ClientError) as exc:
        s3p.put_object(Bucket=pbucket, Key="new", Body=b"x", **SSE_C)
    assert error_code(exc) == "AccessDenied"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as exc:
        s3p.create_multipart_upload(Bucket=pbucket, Key="mpu", **SSE_C)
    assert error_code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        s3p.copy_object(Bucket=pbucket, Key="copy", CopySource={"Bucket": pbucket, "Key": "old"},
                        CopySourceSSECustomerAlgorithm="AES256",
                        CopySourceSSECustomerKey=SSE_C_KEY, **SSE_C)
    assert error_code(exc) == "AccessDenied"

    # Other modes still write; the existing SSE-C object still reads with its key.
    s3p.put_object(Bucket=pbucket, Key="sse-s3", Body=b"y")
    assert s3p.head_object(Bucket=pbucket, Key="sse-s3")["ServerSideEncryption"] == "AES256"
    assert s3p.get_object(Bucket=pbucket, Key="old", **SSE_C)["Body"].read() == b"before"
    assert {o["Key"] for o in s3p.list_objects_v2(Bucket=pbucket)["Contents"]} == {"old",
                                                                                  "sse-s3"}


def test_none_unblocks_and_is_returned(s3p, pbucket):
    _block(s3p, pbucket, "SSE-C")
    _block(s3p, pbucket, "NONE")
    rule = s3p.get_bucket_encryption(Bucket=pbucket)["ServerSideEncryptionConfiguration"][
        "Rules"][0]
    assert rule["BlockedEncryptionTypes"] == {"EncryptionType": ["NONE"]}
    s3p.put_object(Bucket=pbucket, Key="ok", Body=b"x", **SSE_C)


def test_without_blocked_types_nothing_is_blocked(s3p, pbucket):
    s3p.put_bucket_encryption(Bucket=pbucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    rule = s3p.get_bucket_encryption(Bucket=pbucket)["ServerSideEncryptionConfiguration"][
        "Rules"][0]
    assert "BlockedEncryptionTypes" not in rule
    s3p.put_object(Bucket=pbucket, Key="ok", Body=b"x", **SSE_C)


@pytest.mark.parametrize("types", [["SSE-KMS"], ["NONE", "SSE-C"]])
def test_bad_blocked_types_are_refused(s3p, pbucket, types):
    with pytest.raises(ClientError) as exc:
        _block(s3p, pbucket, *types)
    assert error_code(exc) in ("MalformedXML", "InvalidArgument")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
