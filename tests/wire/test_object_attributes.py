"""GetObjectAttributes (issue 14) with boto3 and the aws CLI.

AWS: https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectAttributes.html (the
attributes, ObjectParts paging, "you must have the s3:GetObject and s3:GetObjectAttributes
permissions" on an unversioned bucket, SSE-C headers required for SSE-C objects, kms:Decrypt
for the checksum of an SSE-KMS object as with HeadObject ChecksumMode); the response details
(unquoted ETag, a COMPOSITE checksum without "-N", ObjectParts only for multipart objects and
its parts only for COMPOSITE, Next=0 past the end) are AWS's recorded answers in
shared/reference/s3-surface.md section 6.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import uuid
import zlib

import pytest
from botocore.exceptions import ClientError

from tests.wire.clients import AWS, error_code
from tests.wire.conftest import make_client
from tests.wire.sse_helpers import MiB, new_key

pytestmark = pytest.mark.wire

ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
SSEC_KEY = os.urandom(32)


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _user(srv, actions: list[str], deny: list[str] = ()):
    iam = make_client(srv, "iam")
    name = f"u-{uuid.uuid4().hex[:10]}"
    iam.create_user(UserName=name)
    statements = [{"Effect": "Allow", "Action": actions, "Resource": "*"}]
    if deny:
        statements.append({"Effect": "Deny", "Action": list(deny), "Resource": "*"})
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return make_client(srv, "s3", key["AccessKeyId"], key["SecretAccessKey"])


def _multipart(s3, bucket, key, parts, **create):
    mp = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)
    alg = create.get("ChecksumAlgorithm")
    done = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=mp["UploadId"], PartNumber=n,
                           Body=data, **({"ChecksumAlgorithm": alg} if alg else {}))
        done.append({"PartNumber": n, "ETag": r["ETag"],
                     **{k: v for k, v in r.items() if k == f"Checksum{alg}"}})
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mp["UploadId"],
                                        MultipartUpload={"Parts": done})


def test_single_part_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"hello", ChecksumAlgorithm="CRC32",
                        StorageClass="STANDARD_IA")
    got = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=ALL)
    assert got["ETag"] == put["ETag"].strip('"')            # unquoted
    assert got["Checksum"] == {"ChecksumCRC32": _crc32(b"hello"), "ChecksumType": "FULL_OBJECT"}
    assert "ObjectParts" not in got                           # not a multipart object
    assert (got["StorageClass"], got["ObjectSize"]) == ("STANDARD_IA", 5)
    assert got["LastModified"] == s3.head_object(Bucket=bucket, Key="k")["LastModified"]
    only = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert "ETag" not in only and "Checksum" not in only and only["ObjectSize"] == 5


def test_composite_multipart_parts_are_paged(s3, bucket):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    out = _multipart(s3, bucket, "m", parts, ChecksumAlgorithm="CRC32")
    got = s3.get_object_attributes(Bucket=bucket, Key="m", ObjectAttributes=ALL)
    assert got["Checksum"] == {"ChecksumCRC32": out["ChecksumCRC32"].split("-")[0],
                               "ChecksumType": "COMPOSITE"}
    op = got["ObjectParts"]
    assert (op["TotalPartsCount"], op["PartNumberMarker"], op["NextPartNumberMarker"],
            op["MaxParts"], op["IsTruncated"]) == (3, 0, 3, 1000, False)
    assert op["Parts"] == [{"PartNumber": n, "Size": len(d), "ChecksumCRC32": _crc32(d)}
                           for n, d in enumerate(parts, 1)]
    assert got["ObjectSize"] == sum(map(len, parts))
    page = s3.get_object_attributes(Bucket=bucket, Key="m", ObjectAttributes=["ObjectParts"],
                                    MaxParts=2)["ObjectParts"]
    assert ([p["PartNumber"] for p in page["Parts"]], page["IsTruncated"],
            page["NextPartNumberMarker"]) == ([1, 2], True, 2)
    rest = s3.get_object_attributes(Bucket=bucket, Key="m", ObjectAttributes=["ObjectParts"],
                                    MaxParts=2, PartNumberMarker=2)["ObjectParts"]
    assert ([p["PartNumber"] for p in rest["Parts"]], rest["IsTruncated"]) == ([3], False)
    past = s3.get_object_attributes(Bucket=bucket, Key="m", ObjectAttributes=["ObjectParts"],
                                    PartNumberMarker=7)["ObjectParts"]
    assert "Parts" not in past and past["NextPartNumberMarker"] == 0


def test_full_object_and_plain_multipart_give_only_the_count(s3, bucket):
    parts = [os.urandom(5 * MiB), b"tail"]
    _multipart(s3, bucket, "f", parts, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    got = s3.get_object_attributes(Bucket=bucket, Key="f", ObjectAttributes=ALL)
    assert got["ObjectParts"] == {"TotalPartsCount": 2}
    assert got["Checksum"] == {"ChecksumCRC32": _crc32(b"".join(parts)),
                               "ChecksumType": "FULL_OBJECT"}
    _multipart(s3, bucket, "p", parts)          # no checksum algorithm
    got = s3.get_object_attributes(Bucket=bucket, Key="p", ObjectAttributes=["ObjectParts"])
    assert got["ObjectParts"] == {"TotalPartsCount": 2}


def test_bad_requests(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Bogus"])
    assert error_code(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=[])
    assert error_code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="absent", ObjectAttributes=["ETag"])
    assert error_code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag"],
                                 MaxParts=-1)
    assert error_code(e) == "InvalidArgument"


def test_needs_get_object_and_get_object_attributes(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for actions in (["s3:GetObject"], ["s3:GetObjectAttributes"]):
        client = _user(server, actions)
        with pytest.raises(ClientError) as e:
            client.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag"])
        assert error_code(e) == "AccessDenied"
    both = _user(server, ["s3:GetObject", "s3:GetObjectAttributes"])
    assert both.get_object_attributes(Bucket=bucket, Key="k",
                                      ObjectAttributes=["ObjectSize"])["ObjectSize"] == 1


def test_sse_kms_checksum_needs_decrypt(server, s3, kms, bucket):
    key = new_key(kms)
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["Arn"], ChecksumAlgorithm="CRC32")
    carol = _user(server, ["s3:*", "kms:*"], deny=["kms:Decrypt"])
    got = carol.get_object_attributes(Bucket=bucket, Key="k",
                                      ObjectAttributes=["ETag", "ObjectSize", "StorageClass"])
    assert got["ObjectSize"] == 6
    with pytest.raises(ClientError) as e:
        carol.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Checksum"])
    assert error_code(e) == "AccessDenied"
    mine = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Checksum"])
    assert mine["Checksum"]["ChecksumCRC32"] == _crc32(b"secret")


def _ssec_params(key: bytes) -> dict:
    """GetObjectAttributes gets no botocore SSE-C customisation: base64 key and MD5 by hand."""
    return {"SSECustomerAlgorithm": "AES256",
            "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}


def test_sse_c_needs_the_key(s3_tls, tls_bucket):
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": SSEC_KEY}
    s3_tls.put_object(Bucket=tls_bucket, Key="c", Body=b"customer", ChecksumAlgorithm="CRC32",
                      **ssec)
    with pytest.raises(ClientError) as e:
        s3_tls.get_object_attributes(Bucket=tls_bucket, Key="c", ObjectAttributes=["ETag"])
    assert error_code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3_tls.get_object_attributes(Bucket=tls_bucket, Key="c", ObjectAttributes=["ETag"],
                                     **_ssec_params(os.urandom(32)))
    assert error_code(e) == "AccessDenied"
    got = s3_tls.get_object_attributes(Bucket=tls_bucket, Key="c",
                                       ObjectAttributes=["Checksum", "ObjectSize"],
                                       **_ssec_params(SSEC_KEY))
    assert (got["Checksum"]["ChecksumCRC32"], got["ObjectSize"]) == (_crc32(b"customer"), 8)


def test_aws_cli_get_object_attributes(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"cli!")
    proc = subprocess.run([AWS, "--endpoint-url", server.endpoint, "s3api",
                           "get-object-attributes", "--bucket", bucket, "--key", "k",
                           "--object-attributes", "ETag", "ObjectSize", "StorageClass"],
                          env=server.client_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["ObjectSize"], out["StorageClass"]) == (4, "STANDARD")
    bad = subprocess.run([AWS, "--endpoint-url", server.endpoint, "s3api",
                          "get-object-attributes", "--bucket", bucket, "--key", "k",
                          "--object-attributes", "Nope"],
                         env=server.client_env(), capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "InvalidArgument" in bad.stderr
