"""``coffer s3 reencrypt`` against a real ``coffer serve``: the copy-in-place it relies on keeps
what S3 keeps (content headers, user metadata, checksums, multipart data), and the command
re-encrypts a bucket of 1,000 objects in mixed modes, interrupted half-way and resumed, as the
caller (denied per object without kms:Decrypt on the old key), with an audit record per object.

The server runs with ``--default-encryption none`` (conftest ``plain_server``): the only way to
get the unencrypted objects that data dirs from before SSE-S3-by-default still hold.
"""
from __future__ import annotations

import base64
import hashlib
import os
import uuid

import pytest

from tests.wire.conftest import make_client
from tests.wire.sse_helpers import MiB, new_key, sidecar

pytestmark = pytest.mark.wire

@pytest.fixture(scope="module")
def srv(plain_server):
    return plain_server

@pytest.fixture(scope="module")
def s3(srv):
    return make_client(srv)

@pytest.fixture(scope="module")
def kms(srv):
    return make_client(srv, "kms")

@pytest.fixture
def bucket(s3):
    name = f"re-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name

def _head(s3, bucket: str, key: str, **kw) -> dict:
    return s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **kw)

# -- the copy in place the command issues ------------------------------------------------------

def test_copy_in_place_keeps_headers_metadata_and_checksums(s3, kms, bucket, srv):
    """S3 CopyObject: "if the source object has a checksum, that checksum value will be copied
    to the new object by default" (API_CopyObject, x-amz-checksum-algorithm); with
    x-amz-metadata-directive COPY the content headers and user metadata are the source's."""
    key = new_key(kms)
    data = os.urandom(70_000)
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="doc", Body=data, ContentType="text/x-coffer",
                  CacheControl="max-age=60", ContentDisposition="inline",
                  Metadata={"owner": "ann"}, ChecksumAlgorithm="SHA256")
    before = _head(s3, bucket, "doc")
    assert before["ChecksumSHA256"] == sha and "ServerSideEncryption" not in before

    out = s3.copy_object(Bucket=bucket, Key="doc", CopySource={"Bucket": bucket, "Key": "doc"},
                         MetadataDirective="COPY", ServerSideEncryption="aws:kms",
                         SSEKMSKeyId=key["Arn"])
    assert out["SSEKMSKeyId"] == key["Arn"]
    assert out["CopyObjectResult"]["ChecksumSHA256"] == sha
    after = _head(s3, bucket, "doc")
    assert after["ServerSideEncryption"] == "aws:kms" and after["SSEKMSKeyId"] == key["Arn"]
    for field in ("ContentType", "CacheControl", "ContentDisposition", "Metadata",
                  "ContentLength"):
        assert after[field] == before[field], field
    assert after["ChecksumSHA256"] == sha
    # Sealed under the new object's data key, not in clear (DESIGN.md envelope 5).
    meta = sidecar(srv, bucket, "doc")["meta"]
    assert not meta.get("checksums") and meta["sse"]["checksum_algorithms"] == ["SHA256"]
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == data

    # And back to SSE-S3: the checksum comes out of the seal into clear.
    s3.copy_object(Bucket=bucket, Key="doc", CopySource={"Bucket": bucket, "Key": "doc"},
                   ServerSideEncryption="AES256")
    assert _head(s3, bucket, "doc")["ChecksumSHA256"] == sha
    assert sidecar(srv, bucket, "doc")["meta"]["checksums"] == {"SHA256": sha}

def test_copy_in_place_of_a_multipart_object_keeps_its_data(s3, kms, bucket):
    """A multipart source becomes a single-part object (CopyObject copies up to 5 GiB in one
    request); its data, content type and metadata survive, the part count does not."""
    key = new_key(kms)
    p1, p2 = os.urandom(5 * MiB), os.urandom(1234)
    mp = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="video/x-test",
                                    Metadata={"take": "2"})
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=mp["UploadId"], PartNumber=n,
                            Body=body)["ETag"] for n, body in ((1, p1), (2, p2))]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=mp["UploadId"],
                                 MultipartUpload={"Parts": [
                                     {"PartNumber": n + 1, "ETag": e}
                                     for n, e in enumerate(etags)]})
    s3.copy_object(Bucket=bucket, Key="mp", CopySource={"Bucket": bucket, "Key": "mp"},
                   ServerSideEncryption="aws:kms", SSEKMSKeyId=key["KeyId"])
    head = _head(s3, bucket, "mp")
    assert head["SSEKMSKeyId"] == key["Arn"] and head["ContentLength"] == len(p1) + len(p2)
    assert head["ContentType"] == "video/x-test" and head["Metadata"] == {"take": "2"}
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == p1 + p2

