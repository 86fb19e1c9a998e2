"""boto3 against a real coffer serve: buckets, objects, conditionals, ranges, copy, delete."""
from __future__ import annotations

import datetime
import hashlib
import os
import time
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from tests.wire.clients import error_code
from tests.wire.conftest import make_client

pytestmark = pytest.mark.wire


def test_bucket_lifecycle(s3):
    name = f"life-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    s3.create_bucket(Bucket=name)       # us-east-1's legacy 200 (test_s3_tool_breakers.py)
    s3.put_object(Bucket=name, Key="x", Body=b"1")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert error_code(e.value) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="x")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert e.value.response["Error"]["Code"] == "404"


def test_location_constraint(s3):
    name = f"loc-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    try:
        assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    finally:
        s3.delete_bucket(Bucket=name)


@pytest.mark.parametrize("name", ["ab", "A-bucket", "bucket_", "-abc", "a..b", "192.168.1.1",
                                  "x" * 64, "xn--abc"])
def test_invalid_bucket_names(s3, name):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert error_code(e.value) == "InvalidBucketName"


def test_put_get_head_metadata(s3, bucket):
    body = os.urandom(1024)
    r = s3.put_object(Bucket=bucket, Key="dir/file.bin", Body=body, ContentType="image/png",
                      CacheControl="max-age=60", ContentDisposition="attachment",
                      Metadata={"color": "blue", "Size": "10"})
    assert r["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dir/file.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "image/png"
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentDisposition"] == "attachment"
    assert got["Metadata"] == {"color": "blue", "size": "10"}
    assert got["ContentLength"] == 1024
    head = s3.head_object(Bucket=bucket, Key="dir/file.bin")
    assert head["ETag"] == r["ETag"] and head["ContentLength"] == 1024
    assert "x-amz-request-id" in head["ResponseMetadata"]["HTTPHeaders"]


def test_empty_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b"" and got["ContentLength"] == 0
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'


def test_missing_key_and_bucket(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="nope")
    assert error_code(e.value) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="nope")
    assert error_code(e.value) == "404"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket-xyz", Key="k")
    assert error_code(e.value) == "NoSuchBucket"
    s3.delete_object(Bucket=bucket, Key="nope")  # deleting a missing key succeeds


def test_ranges(s3, bucket):
    body = bytes(range(256)) * 4
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    for rng, expect in [("bytes=0-9", body[:10]), ("bytes=10-", body[10:]),
                        ("bytes=-5", body[-5:]), ("bytes=1000-5000", body[1000:])]:
        got = s3.get_object(Bucket=bucket, Key="r", Range=rng)
        assert got["Body"].read() == expect, rng
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=0-9")
    assert got["ContentRange"] == f"bytes 0-9/{len(body)}"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=5000-")
    assert error_code(e.value) == "InvalidRange"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_conditionals(s3, bucket):
    r = s3.put_object(Bucket=bucket, Key="c", Body=b"data")
    etag = r["ETag"]
    s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert error_code(e.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert error_code(e.value) == "PreconditionFailed"
    # If-Match true wins over a false If-Unmodified-Since (RFC 9110 13.2.2)
    s3.get_object(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=past)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"x", IfNoneMatch="*")
    assert error_code(e.value) == "PreconditionFailed"


def test_response_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    got = s3.get_object(Bucket=bucket, Key="o", ResponseContentType="text/csv",
                        ResponseContentDisposition="inline", ResponseCacheControl="no-cache")
    assert got["ContentType"] == "text/csv"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-cache"


def test_checksum_mode(s3, bucket):
    s3.put_object(Bucket=bucket, Key="ck", Body=b"hello world, this is a small object\n",
                  ChecksumAlgorithm="CRC32")
    got = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == "ojUr7w=="
    got = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED", Range="bytes=0-3")
    assert "ChecksumCRC32" not in got
    for alg in ("CRC32C", "SHA1", "SHA256", "CRC64NVME"):
        r = s3.put_object(Bucket=bucket, Key=f"ck-{alg}", Body=b"abc", ChecksumAlgorithm=alg)
        assert r[f"Checksum{alg}"]
        head = s3.head_object(Bucket=bucket, Key=f"ck-{alg}", ChecksumMode="ENABLED")
        assert head[f"Checksum{alg}"] == r[f"Checksum{alg}"]


def test_bad_checksum_and_md5(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"abc", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert error_code(e.value) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"abc", ChecksumCRC32="AAAAAA==")
    assert error_code(e.value) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad")
    assert error_code(e.value) == "404"   # nothing half-written


def test_copy_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", ContentType="text/plain",
                  Metadata={"a": "1"})
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"copy me").hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"copy me" and got["Metadata"] == {"a": "1"}
    assert got["ContentType"] == "text/plain"
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src",
                   MetadataDirective="REPLACE", Metadata={"b": "2"})
    assert s3.head_object(Bucket=bucket, Key="dst2")["Metadata"] == {"b": "2"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert error_code(e.value) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src",
                   MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"c": "3"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/missing")
    assert error_code(e.value) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/src",
                       CopySourceIfMatch='"nope"')
    assert error_code(e.value) == "PreconditionFailed"


def test_delete_objects(s3, bucket):
    for k in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"},
                                                             {"Key": "zz"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["a", "b", "zz"]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c"}], "Quiet": True})
    assert "Deleted" not in r
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_presigned_urls(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p r+s%.txt", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p r+s%.txt"})
    assert "Signature=" in url          # SigV2 by default against a custom endpoint
    assert requests.get(url, timeout=10).content == b"presigned"
    v4 = make_client(server, signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p r+s%.txt"})
    assert "X-Amz-Signature=" in url
    assert requests.get(url, timeout=10).content == b"presigned"
    put = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up"})
    assert requests.put(put, data=b"uploaded", timeout=10).status_code == 200
    assert s3.get_object(Bucket=bucket, Key="up")["Body"].read() == b"uploaded"
    bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    r = requests.get(bad, timeout=10)
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content
    short = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "up"},
                                      ExpiresIn=1)
    time.sleep(2.1)
    r = requests.get(short, timeout=10)
    assert r.status_code == 403 and b"Request has expired" in r.content


def test_wrong_credentials(server, bucket):
    bad = make_client(server)
    bad._request_signer._credentials.secret_key = "wrong"  # noqa: SLF001
    with pytest.raises(ClientError) as e:
        bad.list_objects_v2(Bucket=bucket)
    assert error_code(e.value) == "SignatureDoesNotMatch"
    unknown = make_client(server)
    unknown._request_signer._credentials.access_key = "AKIANOTAKEY000000000"  # noqa: SLF001
    with pytest.raises(ClientError) as e:
        unknown.list_objects_v2(Bucket=bucket)
    assert error_code(e.value) == "InvalidAccessKeyId"


def test_anonymous_denied(server, bucket):
    r = requests.get(f"{server.endpoint}/{bucket}", timeout=10)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    assert r.headers["Server"] == "Coffer" and r.headers["x-amz-request-id"]


def test_health(server):
    r = requests.get(f"{server.endpoint}/health", timeout=10)
    assert r.status_code == 200
