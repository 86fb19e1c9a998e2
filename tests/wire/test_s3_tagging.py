"""Issue 14, tagging: object and bucket tagging over boto3 and the aws CLI, limits and errors as
AWS answers them, and the tag condition keys in bucket policies.

[S3 UG, "Categorizing your storage using tags"] (limits), [S3 API, PutObjectTagging,
GetObjectTagging, DeleteObjectTagging, PutBucketTagging, GetBucketTagging,
DeleteBucketTagging], [S3 UG, "Tagging and access control policies"] (condition keys).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.wire.clients import aws_json, error_code
from tests.wire.conftest import make_client, new_account


def _tagset(tags: dict[str, str]) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def _tags(resp) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resp["TagSet"]}


def _signed(server, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes = b"", creds: tuple[str, str] | None = None):
    req = AWSRequest(method=method, url=server.endpoint + path, data=body,
                     headers=headers or {})
    S3SigV4Auth(Credentials(*(creds or (server.access_key, server.secret_key))), "s3",
                server.region).add_auth(req)
    raw = urllib.request.Request(req.url, data=body or None,
                                 headers=dict(req.headers.items()), method=method)
    try:
        with urllib.request.urlopen(raw, timeout=10) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


# -- object tagging ---------------------------------------------------------------------------

def test_object_tagging_put_get_delete(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    before = s3.head_object(Bucket=bucket, Key="k")
    s3.put_object_tagging(Bucket=bucket, Key="k",
                          Tagging=_tagset({"project": "coffer", "team": "storage é"}))
    assert _tags(s3.get_object_tagging(Bucket=bucket, Key="k")) == {
        "project": "coffer", "team": "storage é"}
    after = s3.head_object(Bucket=bucket, Key="k")
    # Tagging changes neither the bytes nor the ETag nor Last-Modified.
    assert after["ETag"] == before["ETag"] and after["LastModified"] == before["LastModified"]
    assert after["TagCount"] == 2
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 2 and got["Body"].read() == b"data"
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=_tagset({"only": "one"}))
    assert _tags(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"only": "one"}
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="k")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"


def test_object_tagging_of_a_missing_key_is_no_such_key(s3, bucket):
    for call in (lambda: s3.get_object_tagging(Bucket=bucket, Key="nope"),
                 lambda: s3.put_object_tagging(Bucket=bucket, Key="nope",
                                               Tagging=_tagset({"a": "b"})),
                 lambda: s3.delete_object_tagging(Bucket=bucket, Key="nope")):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == "NoSuchKey"


def test_x_amz_tagging_on_put_and_multipart(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="a=1&b=two%20words&empty=")
    assert _tags(s3.get_object_tagging(Bucket=bucket, Key="t")) == {
        "a": "1", "b": "two words", "empty": ""}
    assert s3.head_object(Bucket=bucket, Key="t")["TagCount"] == 3
    up = s3.create_multipart_upload(Bucket=bucket, Key="m", Tagging="mp=yes")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1,
                          Body=b"p")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert _tags(s3.get_object_tagging(Bucket=bucket, Key="m")) == {"mp": "yes"}
    # An overwrite without tags leaves none (tags belong to the object version).
    s3.put_object(Bucket=bucket, Key="t", Body=b"y")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []


def test_an_empty_x_amz_tagging_header_is_accepted(server, bucket, s3):
    """Backup tools (restic, rclone) send ``x-amz-tagging:`` with nothing in it."""
    status, _, body = _signed(server, "PUT", f"/{bucket}/e", {"x-amz-tagging": ""}, b"x")
    assert status == 200, body
    assert s3.get_object_tagging(Bucket=bucket, Key="e")["TagSet"] == []


def test_copy_object_tagging_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="from=src")
    s3.copy_object(Bucket=bucket, Key="c1", CopySource={"Bucket": bucket, "Key": "src"})
    assert _tags(s3.get_object_tagging(Bucket=bucket, Key="c1")) == {"from": "src"}
    s3.copy_object(Bucket=bucket, Key="c2", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE", Tagging="new=tag")
    assert _tags(s3.get_object_tagging(Bucket=bucket, Key="c2")) == {"new": "tag"}
    s3.copy_object(Bucket=bucket, Key="c3", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE")
    assert s3.get_object_tagging(Bucket=bucket, Key="c3")["TagSet"] == []
    # The metadata directive does not touch tags.
    s3.copy_object(Bucket=bucket, Key="c4", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"m": "1"})
    assert _tags(s3.get_object_tagging(Bucket=bucket, Key="c4")) == {"from": "src"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="c5", CopySource={"Bucket": bucket, "Key": "src"},
                       TaggingDirective="MOVE")
    assert error_code(exc) == "InvalidArgument"


def test_object_tag_limits_and_errors(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    ten = {f"k{i}": "v" for i in range(10)}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=_tagset(ten))
    s3.put_object_tagging(Bucket=bucket, Key="k",
                          Tagging=_tagset({"k" * 128: "v" * 256}))
    cases = [
        (_tagset({f"k{i}": "v" for i in range(11)}), "BadRequest"),
        (_tagset({"k" * 129: "v"}), "InvalidTag"),
        (_tagset({"k": "v" * 257}), "InvalidTag"),
        ({"TagSet": [{"Key": "dup", "Value": "1"}, {"Key": "dup", "Value": "2"}]},
         "InvalidTag"),
        (_tagset({"bad<chars>": "v"}), "InvalidTag"),
        (_tagset({"aws:reserved": "v"}), "InvalidTag"),
    ]
    for tagging, code in cases:
        with pytest.raises(ClientError) as exc:
            s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagging)
        assert error_code(exc) == code, tagging
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # A failed call leaves the stored tags alone.
    assert _tags(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"k" * 128: "v" * 256}
    header_cases = [("&".join(f"k{i}=v" for i in range(11)), "BadRequest"),
                    ("a=1&a=2", "InvalidArgument"), (f"{'k' * 129}=v", "InvalidTag")]
    for header, code in header_cases:
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="h", Body=b"x", Tagging=header)
        assert error_code(exc) == code, header
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="h")


def test_malformed_tagging_body_is_malformed_xml(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for body in (b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
                 b"<Tagging></Tagging>", b"<Nope/>", b"not xml"):
        status, _, out = _signed(server, "PUT", f"/{bucket}/k?tagging", None, body)
        assert status == 400 and b"MalformedXML" in out, (body, out)
    # An empty key (boto3 refuses to send one) is InvalidTag.
    status, _, out = _signed(server, "PUT", f"/{bucket}/k?tagging", None,
                             b"<Tagging><TagSet><Tag><Key></Key><Value>v</Value></Tag>"
                             b"</TagSet></Tagging>")
    assert status == 400 and b"InvalidTag" in out, out


def test_object_tagging_with_the_aws_cli(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="cli", Body=b"x")
    path = server.data_dir.parent / "tags.json"
    path.write_text(json.dumps(_tagset({"via": "cli"})))
    aws_json(server, "s3api", "put-object-tagging", "--bucket", bucket, "--key", "cli",
             "--tagging", f"file://{path}")
    out = aws_json(server, "s3api", "get-object-tagging", "--bucket", bucket, "--key", "cli")
    assert out["TagSet"] == [{"Key": "via", "Value": "cli"}]
    aws_json(server, "s3api", "put-object", "--bucket", bucket, "--key", "cli2",
             "--tagging", "x=1&y=2")
    assert aws_json(server, "s3api", "head-object", "--bucket", bucket,
                    "--key", "cli2")["TagCount"] == 2
    aws_json(server, "s3api", "delete-object-tagging", "--bucket", bucket, "--key", "cli")
    out = aws_json(server, "s3api", "get-object-tagging", "--bucket", bucket, "--key", "cli")
    assert out["TagSet"] == []


# -- bucket tagging ---------------------------------------------------------------------------

def test_bucket_tagging(s3, bucket, server):
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_code(exc) == "NoSuchTagSet"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    fifty = {f"k{i:02d}": f"v{i}" for i in range(50)}
    s3.put_bucket_tagging(Bucket=bucket, Tagging=_tagset(fifty))
    assert _tags(s3.get_bucket_tagging(Bucket=bucket)) == fifty
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=bucket,
                              Tagging=_tagset({f"k{i}": "v" for i in range(51)}))
    assert error_code(exc) == "BadRequest"
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [
            {"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]})
    assert error_code(exc) == "InvalidTag"
    assert _tags(s3.get_bucket_tagging(Bucket=bucket)) == fifty
    out = aws_json(server, "s3api", "get-bucket-tagging", "--bucket", bucket)
    assert len(out["TagSet"]) == 50
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_code(exc) == "NoSuchTagSet"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket + "-missing")
    assert error_code(exc) == "NoSuchBucket"


# -- authorization -----------------------------------------------------------------------------

def _policy(bucket: str, *statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
def other(server, s3, bucket):
    """A second account's client, allowed s3:GetObject and s3:PutObject on the bucket by its
    policy (each test adds what it checks)."""
    account, key, secret = new_account(server)
    return account, make_client(server, key=key, secret=secret)


def test_deny_on_existing_object_tag_refuses_get_of_a_tagged_object(s3, bucket, other):
    account, client = other
    s3.put_object(Bucket=bucket, Key="secret", Body=b"s", Tagging="classification=secret")
    s3.put_object(Bucket=bucket, Key="open", Body=b"o", Tagging="classification=public")
    s3.put_object(Bucket=bucket, Key="untagged", Body=b"u")
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(
        bucket,
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": ["s3:GetObject", "s3:GetObjectTagging"],
         "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Deny", "Principal": "*", "Action": ["s3:GetObject", "s3:GetObjectTagging"],
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/classification": "secret"}}}))
    try:
        assert client.get_object(Bucket=bucket, Key="open")["Body"].read() == b"o"
        assert client.get_object(Bucket=bucket, Key="untagged")["Body"].read() == b"u"
        for call in (lambda: client.get_object(Bucket=bucket, Key="secret"),
                     lambda: client.head_object(Bucket=bucket, Key="secret"),
                     lambda: client.get_object_tagging(Bucket=bucket, Key="secret"),
                     lambda: s3.get_object(Bucket=bucket, Key="secret")):
            with pytest.raises(ClientError) as exc:
                call()
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        # Re-tagging the object (as the owner, allowed) lifts the Deny at once.
        s3.put_object_tagging(Bucket=bucket, Key="secret",
                              Tagging=_tagset({"classification": "public"}))
        assert client.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"s"
    finally:
        s3.delete_bucket_policy(Bucket=bucket)


def test_request_object_tag_conditions(s3, bucket, other):
    account, client = other
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(
        bucket,
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": ["s3:PutObject", "s3:PutObjectTagging"],
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/team": "blue"},
                       "ForAllValues:StringEquals": {
                           "s3:RequestObjectTagKeys": ["team", "note"]}}}))
    try:
        client.put_object(Bucket=bucket, Key="ok", Body=b"x", Tagging="team=blue")
        client.put_object(Bucket=bucket, Key="ok2", Body=b"x", Tagging="team=blue&note=hi")
        client.put_object_tagging(Bucket=bucket, Key="ok",
                                  Tagging=_tagset({"team": "blue", "note": "n"}))
        refused = [
            lambda: client.put_object(Bucket=bucket, Key="no", Body=b"x", Tagging="team=red"),
            lambda: client.put_object(Bucket=bucket, Key="no", Body=b"x",
                                      Tagging="team=blue&other=1"),
            lambda: client.put_object(Bucket=bucket, Key="no", Body=b"x"),
            lambda: client.put_object_tagging(Bucket=bucket, Key="ok",
                                              Tagging=_tagset({"team": "red"})),
        ]
        for call in refused:
            with pytest.raises(ClientError) as exc:
                call()
            assert error_code(exc) == "AccessDenied"
        assert _tags(s3.get_object_tagging(Bucket=bucket, Key="ok")) == {
            "team": "blue", "note": "n"}
    finally:
        s3.delete_bucket_policy(Bucket=bucket)


def test_x_amz_tagging_needs_put_object_tagging_too(s3, bucket, other):
    """[S3 API, PutObject, "Permissions"]: s3:PutObjectTagging is needed to set tags with the
    object; an empty x-amz-tagging sets none, so s3:PutObject alone suffices."""
    account, client = other
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(
        bucket,
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}))
    try:
        client.put_object(Bucket=bucket, Key="plain", Body=b"x")
        client.put_object(Bucket=bucket, Key="empty", Body=b"x", Tagging="")
        with pytest.raises(ClientError) as exc:
            client.put_object(Bucket=bucket, Key="tagged", Body=b"x", Tagging="a=b")
        assert error_code(exc) == "AccessDenied"
        with pytest.raises(ClientError) as exc:
            client.create_multipart_upload(Bucket=bucket, Key="tagged", Tagging="a=b")
        assert error_code(exc) == "AccessDenied"
        for call in (lambda: client.put_object_tagging(Bucket=bucket, Key="plain",
                                                       Tagging=_tagset({"a": "b"})),
                     lambda: client.get_object_tagging(Bucket=bucket, Key="plain"),
                     lambda: client.delete_object_tagging(Bucket=bucket, Key="plain")):
            with pytest.raises(ClientError) as exc:
                call()
            assert error_code(exc) == "AccessDenied"
    finally:
        s3.delete_bucket_policy(Bucket=bucket)


def test_bucket_tagging_actions(s3, bucket, other):
    """DeleteBucketTagging is authorized as s3:PutBucketTagging [S3 API, DeleteBucketTagging,
    "Permissions"]."""
    account, client = other
    s3.put_bucket_tagging(Bucket=bucket, Tagging=_tagset({"a": "1"}))
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(
        bucket,
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": "s3:GetBucketTagging", "Resource": f"arn:aws:s3:::{bucket}"}))
    try:
        assert _tags(client.get_bucket_tagging(Bucket=bucket)) == {"a": "1"}
        for call in (lambda: client.put_bucket_tagging(Bucket=bucket,
                                                       Tagging=_tagset({"b": "2"})),
                     lambda: client.delete_bucket_tagging(Bucket=bucket)):
            with pytest.raises(ClientError) as exc:
                call()
            assert error_code(exc) == "AccessDenied"
        s3.put_bucket_policy(Bucket=bucket, Policy=_policy(
            bucket,
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
             "Action": "s3:PutBucketTagging", "Resource": f"arn:aws:s3:::{bucket}"}))
        client.delete_bucket_tagging(Bucket=bucket)
        with pytest.raises(ClientError) as exc:
            s3.get_bucket_tagging(Bucket=bucket)
        assert error_code(exc) == "NoSuchTagSet"
    finally:
        s3.delete_bucket_policy(Bucket=bucket)


def test_a_bad_tagging_body_from_an_unauthorized_caller_is_access_denied(server, s3, bucket):
    """The stage reads the PutObjectTagging body for s3:RequestObjectTag before it
    authorizes; what is wrong with the body is answered only to a caller who may tag."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    _, key, secret = new_account(server)
    status, _, out = _signed(server, "PUT", f"/{bucket}/k?tagging", None, b"not xml",
                             creds=(key, secret))
    assert status == 403 and b"AccessDenied" in out, out
    status, _, out = _signed(server, "PUT", f"/{bucket}/k?tagging", None, b"not xml")
    assert status == 400 and b"MalformedXML" in out, out
