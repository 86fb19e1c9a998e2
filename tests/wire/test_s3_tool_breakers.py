"""Issue 14, "Small things that break whole tools": each as AWS S3 answers (boto3 and aws CLI).

A conformance suite cleans up with ListBuckets / DeleteBucket, backup tools send non-ASCII
metadata and retry CompleteMultipartUpload, boto3's SigV2 signer signs ``/bucket/``: one wrong
answer there stops the whole tool.
"""
from __future__ import annotations

import base64
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.wire.clients import aws_json, error_code
from tests.wire.conftest import make_client, new_account

MIB = 1024 * 1024


def _raw(server, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes = b"", *, sign: bool = True) -> tuple[int, dict[str, str], bytes]:
    req = AWSRequest(method=method, url=server.endpoint + path, data=body,
                     headers=headers or {})
    if sign:
        S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3",
                    server.region).add_auth(req)
    out = {k: v.encode("utf-8") if isinstance(v, str) else v for k, v in req.headers.items()}
    raw = urllib.request.Request(server.endpoint + path, data=body or None, method=method)
    for k, v in out.items():
        raw.add_header(k, v.decode("latin-1"))
    try:
        with urllib.request.urlopen(raw, timeout=10) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


# -- ListBuckets ------------------------------------------------------------------------------

def test_list_buckets_of_a_caller_without_buckets_carries_an_empty_buckets_element(server):
    """ListAllMyBucketsResult always has <Buckets> (AWS answers ``<Buckets/>``); SDKs that
    unmarshal it strictly (aws-sdk-go v1's conformance suites) stop at its absence."""
    _, key, secret = new_account(server)
    status, _, body = _raw_as(server, key, secret, "GET", "/")
    assert status == 200, body
    assert b"<Buckets></Buckets>" in body or b"<Buckets/>" in body, body
    other = make_client(server, key=key, secret=secret)
    assert other.list_buckets()["Buckets"] == []


def _raw_as(server, key: str, secret: str, method: str, path: str):
    req = AWSRequest(method=method, url=server.endpoint + path)
    S3SigV4Auth(Credentials(key, secret), "s3", server.region).add_auth(req)
    raw = urllib.request.Request(req.url, headers=dict(req.headers.items()), method=method)
    try:
        with urllib.request.urlopen(raw, timeout=10) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def test_list_buckets_pagination_prefix_and_region(server):
    """ListBuckets takes max-buckets (1-10000), continuation-token, prefix and bucket-region,
    and answers ContinuationToken while more buckets remain [S3 API, ListBuckets]."""
    _, key, secret = new_account(server)
    client = make_client(server, key=key, secret=secret)
    tag = uuid.uuid4().hex[:6]
    names = sorted(f"lb-{tag}-{i}" for i in range(5))
    for n in names:
        client.create_bucket(Bucket=n)
    client.create_bucket(Bucket=f"other-{tag}")
    seen, token = [], None
    while True:
        kw = {"MaxBuckets": 2, "Prefix": f"lb-{tag}-"}
        if token:
            kw["ContinuationToken"] = token
        page = client.list_buckets(**kw)
        assert page["Prefix"] == f"lb-{tag}-"
        assert len(page["Buckets"]) <= 2
        seen += [b["Name"] for b in page["Buckets"]]
        token = page.get("ContinuationToken")
        if not token:
            break
    assert seen == names
    assert [b["Name"] for b in client.list_buckets(BucketRegion=server.region)["Buckets"]] \
        == names + [f"other-{tag}"]
    assert client.list_buckets(BucketRegion="eu-west-3")["Buckets"] == []
    # boto3's paginator drives the same parameters.
    pages = client.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": 4})
    assert [b["Name"] for p in pages for b in p["Buckets"]] == names + [f"other-{tag}"]
    for bad in ("0", "10001", "x"):
        status, _, body = _raw_as(server, key, secret, "GET", f"/?max-buckets={bad}")
        assert status == 400 and b"InvalidArgument" in body, (bad, body)
    status, _, body = _raw_as(server, key, secret, "GET", "/?continuation-token=%21%21")
    assert status == 400 and b"InvalidArgument" in body, body
    out = aws_json(_as(server, key, secret), "s3api", "list-buckets", "--prefix", f"lb-{tag}-")
    assert [b["Name"] for b in out["Buckets"]] == names


def _as(server, key: str, secret: str):
    class _Srv:
        endpoint = server.endpoint

        @staticmethod
        def client_env():
            env = server.client_env()
            env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
            return env
    return _Srv


# -- CreateBucket / DeleteBucket --------------------------------------------------------------

def test_create_bucket_you_already_own_in_us_east_1_is_200(s3, bucket, server):
    """us-east-1 keeps S3's legacy answer: re-creating a bucket you own there succeeds
    [S3 API, CreateBucket errors: BucketAlreadyOwnedByYou "... except in the North Virginia
    Region. For legacy compatibility, if you re-create an existing bucket that you already own
    in the North Virginia Region, Amazon S3 returns 200 OK and resets the bucket access control
    lists (ACLs)"]."""
    assert server.region == "us-east-1"
    s3.create_bucket(Bucket=bucket)
    out = aws_json(server, "s3api", "create-bucket", "--bucket", bucket)
    assert out.get("Location") == f"/{bucket}"


def test_create_bucket_you_already_own_elsewhere_is_already_owned_by_you(server):
    eu = make_client(server, region="eu-west-1")
    name = f"eu-{uuid.uuid4().hex[:10]}"
    try:
        eu.create_bucket(Bucket=name,
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    except ClientError as exc:
        pytest.skip(f"eu-west-1 not enabled on this server: {error_code(exc)}")
    try:
        with pytest.raises(ClientError) as exc:
            eu.create_bucket(Bucket=name,
                             CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        assert error_code(exc) == "BucketAlreadyOwnedByYou"
    finally:
        eu.delete_bucket(Bucket=name)


def test_delete_bucket_with_only_in_progress_uploads_succeeds_and_aborts_them(s3, server):
    name = f"mpu-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    up = s3.create_multipart_upload(Bucket=name, Key="big")["UploadId"]
    s3.upload_part(Bucket=name, Key="big", UploadId=up, PartNumber=1, Body=b"x" * 100)
    s3.create_multipart_upload(Bucket=name, Key="other")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # A bucket of the same name starts without the old uploads.
    s3.create_bucket(Bucket=name)
    try:
        assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    finally:
        s3.delete_bucket(Bucket=name)


def test_delete_bucket_with_an_object_is_still_bucket_not_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.create_multipart_upload(Bucket=bucket, Key="u")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert error_code(exc) == "BucketNotEmpty"


# -- SigV2 on bucket-level requests ---------------------------------------------------------

def test_sigv2_header_auth_on_bucket_level_requests(server, bucket):
    """boto3's HmacV1 signer signs ``/bucket/`` for path-style bucket requests sent to
    ``/bucket``: every bucket-level call over SigV2 was refused."""
    v2 = make_client(server, signature_version="s3")
    v2.put_object(Bucket=bucket, Key="a/b", Body=b"hello")
    assert [o["Key"] for o in v2.list_objects(Bucket=bucket)["Contents"]] == ["a/b"]
    assert [o["Key"] for o in v2.list_objects_v2(Bucket=bucket)["Contents"]] == ["a/b"]
    v2.head_bucket(Bucket=bucket)
    v2.get_bucket_location(Bucket=bucket)
    v2.list_multipart_uploads(Bucket=bucket)
    v2.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a/b"}]})
    name = f"v2-{uuid.uuid4().hex[:10]}"
    v2.create_bucket(Bucket=name)
    v2.delete_bucket(Bucket=name)


def test_sigv2_wrong_secret_on_bucket_level_still_refused(server, bucket):
    v2 = make_client(server, signature_version="s3", secret="wrong" * 8)
    with pytest.raises(ClientError) as exc:
        v2.list_objects(Bucket=bucket)
    assert error_code(exc) == "SignatureDoesNotMatch"


# -- Unparsable keys ------------------------------------------------------------------------

def test_unparsable_key_is_400_invalid_uri(server, bucket):
    """A key whose percent-encoding is not UTF-8: 400 InvalidURI "Couldn't parse the specified
    URI." (S3 API, "Error responses": InvalidURI), not 404."""
    for path in (f"/{bucket}/%FF", f"/{bucket}/ok/%C3", f"/{bucket}/%E2%82"):
        status, _, body = _raw(server, "GET", path)
        assert status == 400, (path, status, body)
        assert b"<Code>InvalidURI</Code>" in body
        assert b"Couldn&apos;t parse the specified URI." in body \
            or b"Couldn't parse the specified URI." in body, body
        status, _, body = _raw(server, "PUT", path, body=b"x")
        assert status == 400 and b"InvalidURI" in body, (path, body)
    # A "%" that starts no escape (botocore cannot sign such a path: sent unsigned, the
    # router answers before any authorization).
    for path in (f"/{bucket}/a%zz", f"/{bucket}/%", f"/{bucket}/a%2"):
        status, _, body = _raw(server, "GET", path, sign=False)
        assert status == 400 and b"<Code>InvalidURI</Code>" in body, (path, status, body)
    # A literal "%" sent as %25 is an ordinary key.
    status, _, body = _raw(server, "GET", f"/{bucket}/a%25")
    assert status == 404 and b"NoSuchKey" in body, body


# -- UploadPartCopy range ---------------------------------------------------------------------

def test_upload_part_copy_range_past_the_end_is_invalid_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    for rng in ("bytes=0-10", "bytes=5-99", "bytes=10-12"):
        with pytest.raises(ClientError) as exc:
            s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": "src"},
                                CopySourceRange=rng)
        assert error_code(exc) == "InvalidRange", rng
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"},
                            CopySourceRange="bytes=5-2")
    assert error_code(exc) == "InvalidArgument"
    part = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
                               CopySource={"Bucket": bucket, "Key": "src"},
                               CopySourceRange="bytes=2-9")
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"23456789"


# -- CompleteMultipartUpload edge cases ----------------------------------------------------

def test_complete_listing_a_part_twice_is_invalid_part_order(s3, bucket):
    """The part list must be in ascending part-number order: a repeated number is not
    ascending (S3 API, CompleteMultipartUpload errors: InvalidPartOrder)."""
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1,
                          Body=b"a" * (5 * MIB))["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etag}, {"PartNumber": 1, "ETag": etag}]})
    assert error_code(exc) == "InvalidPartOrder"
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 5 * MIB


def test_re_completing_a_completed_upload_answers_the_same_result(s3, bucket, server):
    """CompleteMultipartUpload is idempotent on AWS: a retry after success (a lost response)
    answers 200 with the object's ETag [S3 API, CompleteMultipartUpload: "... you should
    retry the failed requests"; adobe/S3Mock#2586 records AWS answering 200 again]."""
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1,
                          Body=b"abc")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up,
                                         MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up,
                                         MultipartUpload=parts)
    assert again["ETag"] == first["ETag"] and again["Key"] == "k"
    import json
    (server.data_dir.parent / "parts.json").write_text(json.dumps(parts))
    out = aws_json(server, "s3api", "complete-multipart-upload", "--bucket", bucket, "--key",
                   "k", "--upload-id", up, "--multipart-upload",
                   f"file://{server.data_dir.parent / 'parts.json'}")
    assert out["ETag"] == first["ETag"]
    # Once another write replaced the object, the upload id is gone for good.
    s3.put_object(Bucket=bucket, Key="k", Body=b"new")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up,
                                     MultipartUpload=parts)
    assert error_code(exc) == "NoSuchUpload"
    # Another key never answers for this upload.
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="other", UploadId=up,
                                     MultipartUpload=parts)
    assert error_code(exc) == "NoSuchUpload"


def test_a_resent_part_replaces_the_first_and_its_old_etag_is_invalid(s3, bucket):
    """"If you upload a new part using the same part number as a previously uploaded part,
    the previously uploaded part is overwritten" [S3 UG, "Uploading and copying objects
    using multipart upload"]: completing with the first ETag is InvalidPart."""
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    old = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=b"one")
    new = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=b"two!")
    assert old["ETag"] != new["ETag"]
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [(1, new["ETag"], 4)]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": old["ETag"]}]})
    assert error_code(exc) == "InvalidPart"
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": new["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two!"


# -- Non-ASCII user metadata ----------------------------------------------------------------

def _word(text: str) -> str:
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def test_non_ascii_metadata_round_trips_rfc2047_encoded(s3, bucket, server):
    """"If the string contains non-US-ASCII characters, values of such headers are character
    decoded as per RFC 2047 before storing and encoded as per RFC 2047 to make them mail-safe
    before returning" [S3 UG, "Working with object metadata", user-defined metadata]."""
    s3.put_object(Bucket=bucket, Key="w", Body=b"x", Metadata={"name": _word("café ☕")})
    got = s3.head_object(Bucket=bucket, Key="w")["Metadata"]["name"]
    assert got == _word("café ☕")
    # Raw UTF-8 bytes in the header (curl, Go's net/http) come back encoded too.
    status, _, body = _raw(server, "PUT", f"/{bucket}/raw", {"x-amz-meta-city": "Zürich"},
                           b"x")
    assert status == 200, body
    status, headers, _ = _raw(server, "HEAD", f"/{bucket}/raw")
    assert status == 200
    assert headers["x-amz-meta-city"] == _word("Zürich")
    # ASCII values are returned as sent, including ones that only look like encoded words.
    s3.put_object(Bucket=bucket, Key="a", Body=b"x", Metadata={"plain": "hello world"})
    assert s3.head_object(Bucket=bucket, Key="a")["Metadata"] == {"plain": "hello world"}
    # Copying keeps the decoded value (and so the same encoded answer).
    s3.copy_object(Bucket=bucket, Key="w2", CopySource={"Bucket": bucket, "Key": "w"})
    assert s3.get_object(Bucket=bucket, Key="w2")["Metadata"]["name"] == _word("café ☕")
    out = aws_json(server, "s3api", "head-object", "--bucket", bucket, "--key", "w")
    assert out["Metadata"]["name"] == _word("café ☕")
