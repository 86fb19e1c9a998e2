"""Conditional writes and deletes (issue 14): If-None-Match / If-Match on PutObject,
CompleteMultipartUpload and DeleteObject, with boto3, the aws CLI and raw racing requests.

AWS: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html and
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html; the answers that
the pages leave open (501 for values other than ``*``, 404 for If-Match on an absent key, 409
for a key changed during a conditional multipart upload) are AWS's recorded ones in
shared/reference/s3-surface.md section 9.
"""
from __future__ import annotations

import hashlib
import json
import http.client
import subprocess
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.wire.clients import AWS, error_code
from tests.wire.conftest import make_client

pytestmark = pytest.mark.wire

MIB = 1024 * 1024


def _error(exc: pytest.ExceptionInfo) -> dict:
    return exc.value.response["Error"]


def _status(exc: pytest.ExceptionInfo) -> int:
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_if_none_match_creates_only(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert (_status(e), error_code(e)) == (412, "PreconditionFailed")
    assert _error(e)["Condition"] == "If-None-Match"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"third", IfNoneMatch="*")


def test_put_if_match_compares_the_current_etag(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    etag2 = s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)["ETag"]
    # Quotes are optional (AWS accepts both forms).
    s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=etag2.strip('"'))
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v4", IfMatch=etag)
    assert (_status(e), error_code(e)) == (412, "PreconditionFailed")
    assert _error(e)["Condition"] == "If-Match"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v3"


def test_put_if_match_on_an_absent_key_is_no_such_key(s3, bucket):
    """404 NoSuchKey whatever the value (AWS, s3-surface.md section 9)."""
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch='"0123"')
    assert (_status(e), error_code(e)) == (404, "NoSuchKey")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="absent")


@pytest.mark.parametrize("kwargs,header", [
    ({"IfNoneMatch": '"abc"'}, "If-None-Match"),
    ({"IfMatch": "*"}, "If-Match"),
    ({"IfMatch": '"abc"', "IfNoneMatch": "*"}, "If-Match,If-None-Match"),
])
def test_put_condition_values_aws_does_not_implement(s3, bucket, kwargs, header):
    """AWS answers 501 NotImplemented with the offending Header (s3-surface.md section 9)."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", **kwargs)
    assert (_status(e), error_code(e)) == (501, "NotImplemented")
    assert _error(e)["Header"] == header
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"


# -- the race: two If-None-Match PUTs both past the early check, then committing


class _PayloadAuth(S3SigV4Auth):
    """SigV4 over a body the request object does not hold (it is sent in two steps)."""

    def __init__(self, server, payload_sha256: str) -> None:
        super().__init__(Credentials(server.access_key, server.secret_key), "s3", server.region)
        self._payload = payload_sha256

    def payload(self, request):  # noqa: D401 - botocore hook
        return self._payload


def _start_put(server, bucket: str, key: str, body: bytes, release: threading.Event,
               out: list, barrier: threading.Barrier) -> None:
    url = f"{server.endpoint}/{bucket}/{key}"
    req = AWSRequest(method="PUT", url=url, headers={
        "If-None-Match": "*", "Content-Length": str(len(body))})
    _PayloadAuth(server, hashlib.sha256(body).hexdigest()).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    parts = urlsplit(url)
    conn.putrequest("PUT", parts.path, skip_accept_encoding=True)
    for k, v in req.headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(body[:1024])          # the server has the headers: its early check runs now
    barrier.wait(timeout=30)
    release.wait(timeout=30)
    conn.send(body[1024:])
    resp = conn.getresponse()
    out.append((resp.status, resp.read(), body))
    conn.close()


def test_racing_if_none_match_puts_exactly_one_wins(server, s3, bucket):
    """Both requests pass the early check; storage decides at its commit point, so exactly one
    succeeds and the other gets 409 ConditionalRequestConflict (the key changed while it was in
    flight: AWS PutObject API reference, If-None-Match)."""
    barrier = threading.Barrier(3)
    release = threading.Event()
    out: list = []
    bodies = [bytes([65 + i]) * (2 * MIB) for i in range(2)]
    threads = [threading.Thread(target=_start_put, args=(server, bucket, "race", b, release,
                                                          out, barrier)) for b in bodies]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    time.sleep(0.5)                 # both early checks have seen no object
    release.set()
    for t in threads:
        t.join(60)
    statuses = sorted(status for status, _, _ in out)
    assert statuses == [200, 409], out
    loser = next(data for status, data, _ in out if status == 409)
    assert b"<Code>ConditionalRequestConflict</Code>" in loser
    winner = next(body for status, _, body in out if status == 200)
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == winner


# -- CompleteMultipartUpload


def _upload(s3, bucket: str, key: str, data: bytes = b"part") -> tuple[str, list[dict]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1,
                          Body=data)["ETag"]
    return upload_id, [{"PartNumber": 1, "ETag": etag}]


def _complete(s3, bucket, key, upload_id, parts, **kwargs):
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": parts}, **kwargs)


def test_complete_if_none_match(s3, bucket):
    upload_id, parts = _upload(s3, bucket, "new")
    _complete(s3, bucket, "new", upload_id, parts, IfNoneMatch="*")
    # The key existed before CreateMultipartUpload: the plain 412, and the upload stays.
    upload_id, parts = _upload(s3, bucket, "new", b"again")
    with pytest.raises(ClientError) as e:
        _complete(s3, bucket, "new", upload_id, parts, IfNoneMatch="*")
    assert (_status(e), error_code(e)) == (412, "PreconditionFailed")
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="new",
                                                   UploadId=upload_id)["Parts"]] == [1]
    assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == b"part"


def test_complete_conflicts_with_a_write_after_create(s3, bucket):
    """A key written (or deleted) after CreateMultipartUpload is 409 ConditionalRequestConflict
    on a conditional Complete, even when the new state would satisfy the condition
    (AWS CompleteMultipartUpload API reference, If-None-Match / If-Match)."""
    upload_id, parts = _upload(s3, bucket, "k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"meanwhile")
    with pytest.raises(ClientError) as e:
        _complete(s3, bucket, "k", upload_id, parts, IfNoneMatch="*")
    assert (_status(e), error_code(e)) == (409, "ConditionalRequestConflict")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"meanwhile"

    etag = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    upload_id, parts = _upload(s3, bucket, "k", b"replacement")
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"meanwhile")     # same ETag as before
    with pytest.raises(ClientError) as e:
        _complete(s3, bucket, "k", upload_id, parts, IfMatch=etag)
    assert error_code(e) == "ConditionalRequestConflict"


def test_complete_if_match(s3, bucket):
    upload_id, parts = _upload(s3, bucket, "k")
    first = _complete(s3, bucket, "k", upload_id, parts)["ETag"]
    assert first.endswith('-1"')
    upload_id, parts = _upload(s3, bucket, "k", b"two")
    with pytest.raises(ClientError) as e:
        _complete(s3, bucket, "k", upload_id, parts, IfMatch='"ffff"')
    assert (_status(e), error_code(e)) == (412, "PreconditionFailed")
    # If-Match compares against the current ETag, here the multipart "-N" form.
    _complete(s3, bucket, "k", upload_id, parts, IfMatch=first)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    upload_id, parts = _upload(s3, bucket, "absent")
    with pytest.raises(ClientError) as e:
        _complete(s3, bucket, "absent", upload_id, parts, IfMatch=first)
    assert (_status(e), error_code(e)) == (404, "NoSuchKey")


# -- DeleteObject


def test_delete_if_match(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch='"0000"')
    assert (_status(e), error_code(e)) == (412, "PreconditionFailed")
    s3.head_object(Bucket=bucket, Key="k")
    resp = s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")
    # If-Match on an absent key: 404 NoSuchKey (AWS conditional-deletes matrix, rustfs#2602).
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert (_status(e), error_code(e)) == (404, "NoSuchKey")
    # "*": delete only if it exists.
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    assert error_code(e) == "NoSuchKey"
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    # Without a condition deleting an absent key stays a 204.
    s3.delete_object(Bucket=bucket, Key="k")


def test_delete_directory_bucket_conditions_are_not_implemented(s3, bucket):
    """x-amz-if-match-size / -last-modified-time exist for directory buckets only (AWS
    DeleteObject API reference); general purpose buckets answer 501."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key="k", IfMatchSize=2)
    assert (_status(e), error_code(e)) == (501, "NotImplemented")
    s3.head_object(Bucket=bucket, Key="k")


# -- the aws CLI


def _aws(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AWS, "--endpoint-url", server.endpoint, "s3api", *args],
                          env=server.client_env(), capture_output=True, text=True, timeout=120)


def test_aws_cli_conditional_put_and_delete(server, bucket, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"cli")
    ok = _aws(server, "put-object", "--bucket", bucket, "--key", "c", "--body", str(body),
              "--if-none-match", "*")
    assert ok.returncode == 0, ok.stderr
    again = _aws(server, "put-object", "--bucket", bucket, "--key", "c", "--body", str(body),
                 "--if-none-match", "*")
    assert again.returncode != 0 and "PreconditionFailed" in again.stderr
    wrong = _aws(server, "delete-object", "--bucket", bucket, "--key", "c", "--if-match",
                 '"0000"')
    assert wrong.returncode != 0 and "PreconditionFailed" in wrong.stderr

    etag = json.loads(ok.stdout)["ETag"]
    done = _aws(server, "delete-object", "--bucket", bucket, "--key", "c", "--if-match", etag)
    assert done.returncode == 0, done.stderr


def test_delete_objects_per_object_etag(s3, bucket):
    """DeleteObjects takes each key's condition as its <ETag>; a failed one is that key's
    <Error> in a 200 (AWS: userguide/conditional-deletes.html)."""
    etag = s3.put_object(Bucket=bucket, Key="a", Body=b"a")["ETag"]
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "ETag": etag}, {"Key": "b", "ETag": '"0000"'},
        {"Key": "gone", "ETag": etag}]})
    assert [d["Key"] for d in out["Deleted"]] == ["a"]
    assert sorted((e["Key"], e["Code"]) for e in out["Errors"]) == [
        ("b", "PreconditionFailed"), ("gone", "NoSuchKey")]
    s3.head_object(Bucket=bucket, Key="b")


def test_policies_can_require_conditional_writes(server, s3, bucket):
    """s3:if-none-match / s3:if-match condition keys (AWS: userguide/
    conditional-writes-enforce.html, conditional-delete-enforce.html)."""
    iam = make_client(server, "iam")
    name = f"u-{uuid.uuid4().hex[:10]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*",
             "Condition": {"Null": {"s3:if-none-match": "true"}}},
            {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*",
             "Condition": {"Null": {"s3:if-match": "true"}}}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    user = make_client(server, "s3", key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        user.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert error_code(e) == "AccessDenied"
    etag = user.put_object(Bucket=bucket, Key="k", Body=b"x", IfNoneMatch="*")["ETag"]
    with pytest.raises(ClientError) as e:
        user.delete_object(Bucket=bucket, Key="k")
    assert error_code(e) == "AccessDenied"
    user.delete_object(Bucket=bucket, Key="k", IfMatch=etag)


def test_copy_object_destination_conditions(s3, bucket):
    """CopyObject takes If-None-Match / If-Match for its destination (AWS CopyObject API
    reference, IfNoneMatch: 412 when the destination key exists)."""
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    dst = s3.put_object(Bucket=bucket, Key="dst", Body=b"old")["ETag"]
    src = {"Bucket": bucket, "Key": "src"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=src, IfNoneMatch="*")
    assert (_status(e), error_code(e)) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=src, IfMatch='"0000"')
    assert error_code(e) == "PreconditionFailed"
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=src, IfMatch=dst)
    s3.copy_object(Bucket=bucket, Key="new", CopySource=src, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"source"
