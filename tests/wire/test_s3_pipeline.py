"""The S3 edge pipeline on the wire (issue 11): SSE-KMS needs SigV4 and a signed caller,
``response-*`` overrides need a signature, keys may hold newlines, and ``s3:max-keys`` sees
the number the listing honours."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from kms.audit import read_trail
from tests.wire.conftest import make_client
from tests.wire.sse_helpers import error_of

# "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature
# Version 4": the answer to SigV2 *and* anonymous requests for SSE-KMS objects
# (https://repost.aws/knowledge-center/s3-kms-signature-version-error).
SIGV4_MESSAGE = "require AWS Signature Version 4"


def _doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _public_read(bucket: str) -> str:
    return _doc({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket}/*"})


@pytest.fixture
def anon(server):
    return make_client(server, "s3", "x", "y", signature_version=UNSIGNED)


@pytest.fixture
def sigv2(server):
    return make_client(server, "s3", signature_version="s3")


@pytest.fixture
def via_s3_key(kms, server):
    """A key whose policy lets anyone use it through S3 (kms:ViaService): the KMS alone would
    let an anonymous S3 request decrypt with it."""
    arn = kms.create_key(Description="via s3 for anyone")["KeyMetadata"]["Arn"]
    account = arn.split(":")[4]
    kms.put_key_policy(KeyId=arn, PolicyName="default", Policy=_doc(
        {"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "AnyoneViaS3", "Effect": "Allow", "Principal": "*",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:ViaService": f"s3.{server.region}.amazonaws.com"}}}))
    return arn


# -- finding 13: SSE-KMS needs SigV4 and an authenticated caller ------------------------------

def test_anonymous_read_of_sse_kms_object_is_refused(s3, bucket, anon, via_s3_key):
    s3.put_object(Bucket=bucket, Key="kms.txt", Body=b"secret", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=via_s3_key)
    s3.put_object(Bucket=bucket, Key="plain.txt", Body=b"public")
    s3.put_bucket_policy(Bucket=bucket, Policy=_public_read(bucket))
    try:
        assert anon.get_object(Bucket=bucket, Key="plain.txt")["Body"].read() == b"public"
        with pytest.raises(ClientError) as exc:
            anon.get_object(Bucket=bucket, Key="kms.txt")["Body"].read()
        assert error_of(exc.value) == ("InvalidArgument", 400)
        assert SIGV4_MESSAGE in exc.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as exc:
            anon.head_object(Bucket=bucket, Key="kms.txt")
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    finally:
        s3.delete_bucket_policy(Bucket=bucket)


def test_anonymous_write_with_sse_kms_is_refused(s3, bucket, anon, via_s3_key):
    s3.put_bucket_policy(Bucket=bucket, Policy=_doc(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/*"}))
    try:
        with pytest.raises(ClientError) as exc:
            anon.put_object(Bucket=bucket, Key="up.txt", Body=b"x",
                            ServerSideEncryption="aws:kms", SSEKMSKeyId=via_s3_key)
        assert error_of(exc.value) == ("InvalidArgument", 400)
        anon.put_object(Bucket=bucket, Key="plain-up.txt", Body=b"x")   # SSE-S3 default: fine
    finally:
        s3.delete_bucket_policy(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="up.txt")


def test_sigv2_sse_kms_get_head_put_copy_are_refused(s3, bucket, sigv2, via_s3_key):
    s3.put_object(Bucket=bucket, Key="kms.txt", Body=b"secret", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=via_s3_key)
    s3.put_object(Bucket=bucket, Key="s3.txt", Body=b"sse-s3")
    assert sigv2.get_object(Bucket=bucket, Key="s3.txt")["Body"].read() == b"sse-s3"
    with pytest.raises(ClientError) as exc:
        sigv2.get_object(Bucket=bucket, Key="kms.txt")["Body"].read()
    assert error_of(exc.value) == ("InvalidArgument", 400)
    assert SIGV4_MESSAGE in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        sigv2.head_object(Bucket=bucket, Key="kms.txt")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as exc:
        sigv2.put_object(Bucket=bucket, Key="new.txt", Body=b"x",
                         ServerSideEncryption="aws:kms", SSEKMSKeyId=via_s3_key)
    assert error_of(exc.value) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:       # an SSE-KMS source
        sigv2.copy_object(Bucket=bucket, Key="copy.txt",
                          CopySource={"Bucket": bucket, "Key": "kms.txt"})
    assert error_of(exc.value) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:       # an SSE-KMS destination
        sigv2.copy_object(Bucket=bucket, Key="copy.txt", ServerSideEncryption="aws:kms",
                          SSEKMSKeyId=via_s3_key, CopySource={"Bucket": bucket, "Key": "s3.txt"})
    assert error_of(exc.value) == ("InvalidArgument", 400)
    # A bucket whose default encryption is SSE-KMS: a SigV2 write would use the key too.
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": via_s3_key}}]})
    with pytest.raises(ClientError) as exc:
        sigv2.put_object(Bucket=bucket, Key="default.txt", Body=b"x")
    assert error_of(exc.value) == ("InvalidArgument", 400)
    for key in ("new.txt", "copy.txt", "default.txt"):
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key=key)
    assert s3.get_object(Bucket=bucket, Key="kms.txt")["Body"].read() == b"secret"   # SigV4


# -- finding 14: response-* overrides need a signed request ------------------------------------

def test_response_overrides_refused_on_anonymous_requests(s3, bucket, anon, server):
    s3.put_object(Bucket=bucket, Key="page.html", Body=b"<p>hi</p>", ContentType="text/plain")
    s3.put_bucket_policy(Bucket=bucket, Policy=_public_read(bucket))
    try:
        # S3 API GetObject, "Overriding response header values through the request": the
        # parameters need a signed request and "cannot be used with an unsigned (anonymous)
        # request".
        with pytest.raises(ClientError) as exc:
            anon.get_object(Bucket=bucket, Key="page.html", ResponseContentType="text/html")
        assert error_of(exc.value) == ("InvalidRequest", 400)
        with pytest.raises(ClientError) as exc:
            anon.get_object(Bucket=bucket, Key="page.html",
                            ResponseContentDisposition="attachment")
        assert error_of(exc.value) == ("InvalidRequest", 400)
        plain = anon.get_object(Bucket=bucket, Key="page.html")
        assert plain["ContentType"] == "text/plain"
        signed = s3.get_object(Bucket=bucket, Key="page.html", ResponseContentType="text/html")
        assert signed["ContentType"] == "text/html"
    finally:
        s3.delete_bucket_policy(Bucket=bucket)


# -- finding 17: keys holding newlines are stored and audited ----------------------------------

@pytest.mark.parametrize("key", ["a\nb", "line1\nline2/x.txt", "\n", "cr\r\nlf"])
def test_keys_with_newlines_round_trip_and_are_audited(s3, bucket, server, key):
    marker = uuid.uuid4().hex.encode()
    s3.put_object(Bucket=bucket, Key=key, Body=marker)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == marker
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(marker)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert key in listed
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=key)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    events = [e for e in read_trail(server.data_dir / "audit")
              if e.get("eventSource") == "s3.amazonaws.com"
              and (e.get("requestParameters") or {}).get("bucketName") == bucket
              and (e.get("requestParameters") or {}).get("key") == key]
    names = {e["eventName"] for e in events}
    assert {"PutObject", "GetObject", "HeadObject", "DeleteObject"} <= names, names
    arns = [r["ARN"] for e in events for r in e["resources"]]
    assert f"arn:aws:s3:::{bucket}/{key}" in arns


# -- finding 20b: s3:max-keys sees what the listing honours ------------------------------------

def _signed_get(server, path: str) -> tuple[int, bytes]:
    req = AWSRequest(method="GET", url=server.endpoint + path)
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3",
                server.region).add_auth(req)
    raw = urllib.request.Request(req.url, headers=dict(req.headers.items()), method="GET")
    try:
        with urllib.request.urlopen(raw, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_max_keys_condition_and_listing_parse_the_same_number(s3, bucket, server):
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"k{i:02d}", Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=_doc(
        {"Sid": "SmallPages", "Effect": "Deny", "Principal": "*", "Action": "s3:ListBucket",
         "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"NumericGreaterThan": {"s3:max-keys": "10"}}}))
    try:
        status, body = _signed_get(server, f"/{bucket}?list-type=2&max-keys=5")
        assert status == 200 and body.count(b"<Key>") == 5
        status, body = _signed_get(server, f"/{bucket}?list-type=2&max-keys=200")
        assert status == 403 and b"AccessDenied" in body
        # "+200" is 200 to the listing, so it is 200 to the policy too.
        status, body = _signed_get(server, f"/{bucket}?list-type=2&max-keys=%2B200")
        assert status == 403 and b"AccessDenied" in body, body
        # Forms Python's int() takes but S3 (Java's parseInt) does not: InvalidArgument.
        for odd in ("2_00", "%20200", "%D9%A2%D9%A0%D9%A0"):
            status, body = _signed_get(server, f"/{bucket}?list-type=2&max-keys={odd}")
            assert status == 400 and b"InvalidArgument" in body, (odd, body)
    finally:
        s3.delete_bucket_policy(Bucket=bucket)


# -- found by the fuzzer: an XML declaration naming an unknown encoding -----------------------

def _signed(server, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    req = AWSRequest(method=method, url=server.endpoint + path, data=body)
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3",
                server.region).add_auth(req)
    raw = urllib.request.Request(req.url, data=body, headers=dict(req.headers.items()),
                                 method=method)
    try:
        with urllib.request.urlopen(raw, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_unknown_xml_encoding_is_malformed_xml_not_a_500(server, s3):
    bogus = b'<?xml version="1.0" encoding="bogus"?><CreateBucketConfiguration/>'
    name = f"enc-{uuid.uuid4().hex[:10]}"
    status, body = _signed(server, "PUT", f"/{name}", bogus)
    assert status == 400 and b"MalformedXML" in body, body
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=name)
