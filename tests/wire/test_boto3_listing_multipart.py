"""boto3 against a real coffer serve: listing (V1, V2, url encoding) and multipart uploads."""
from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from tests.wire.clients import error_code

pytestmark = pytest.mark.wire

TRICKY = ["a", "a/b", "a.txt", "a b", "a+b", "100%", "../x", "ünïcødé/ключ", "a/b/c", "a//d",
          "z" * 1024, "sp ace/x", "~tilde", "emoji-😀"]
MiB = 1024 * 1024


def test_list_v2_order_and_encoding(s3, bucket):
    for k in TRICKY:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode()[:10])
    r = s3.list_objects_v2(Bucket=bucket)
    keys = [o["Key"] for o in r["Contents"]]
    assert keys == sorted(TRICKY, key=lambda k: k.encode())
    assert r["KeyCount"] == len(TRICKY)
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["../", "a/", "sp ace/", "ünïcødé/"]
    assert [o["Key"] for o in r["Contents"]] == sorted(
        [k for k in TRICKY if "/" not in k], key=lambda k: k.encode())
    r = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/b"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a//", "a/b/"]
    r = s3.list_objects_v2(Bucket=bucket, StartAfter="a.txt")
    assert [o["Key"] for o in r["Contents"]][0] == "a//d"


def test_list_v2_pagination(s3, bucket):
    keys = [f"k/{i:04d}" for i in range(25)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, MaxKeys=7, **kw)
        seen += [o["Key"] for o in r.get("Contents", [])]
        pages += 1
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert seen == keys and pages == 4
    paginator = s3.get_paginator("list_objects_v2")
    assert sum(len(p.get("Contents", [])) for p in paginator.paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 10})) == 25
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="garbage!!")
    assert error_code(e.value) == "InvalidArgument"


def test_list_v1(s3, bucket):
    for k in ["x/1", "x/2", "y", "z/3"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    r = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert r["IsTruncated"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["x/"]
    assert [o["Key"] for o in r["Contents"]] == ["y"]
    r2 = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=r["NextMarker"])
    assert [p["Prefix"] for p in r2["CommonPrefixes"]] == ["z/"]
    all_keys = [o["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket=bucket)
                for o in p.get("Contents", [])]
    assert all_keys == ["x/1", "x/2", "y", "z/3"]


def test_multipart_roundtrip(s3, bucket):
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="video/mp4",
                                    Metadata={"m": "v"})
    uid = up["UploadId"]
    etags = []
    # upload out of order, as s3transfer does
    for n in (3, 1, 2):
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n,
                           Body=parts_data[n - 1])
        etags.append((n, r["ETag"]))
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [uid]
    parts = sorted(({"PartNumber": n, "ETag": e} for n, e in etags),
                   key=lambda p: p["PartNumber"])
    r = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                     MultipartUpload={"Parts": parts})
    expect = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts_data)).hexdigest()
    assert r["ETag"] == f'"{expect}-3"'
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == b"".join(parts_data)
    assert got["ContentType"] == "video/mp4" and got["Metadata"] == {"m": "v"}
    # a range spanning the part boundary
    rng = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}")
    assert rng["Body"].read() == (parts_data[0] + parts_data[1])[5 * MiB - 10:5 * MiB + 10]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_errors(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="e")["UploadId"]
    small = s3.upload_part(Bucket=bucket, Key="e", UploadId=uid, PartNumber=1, Body=b"tiny")
    last = s3.upload_part(Bucket=bucket, Key="e", UploadId=uid, PartNumber=2, Body=b"end")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": small["ETag"]},
                      {"PartNumber": 2, "ETag": last["ETag"]}]})
    assert error_code(e.value) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": last["ETag"]},
                      {"PartNumber": 1, "ETag": small["ETag"]}]})
    assert error_code(e.value) == "InvalidPartOrder"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]})
    assert error_code(e.value) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="e", UploadId=uid, PartNumber=10001, Body=b"x")
    assert error_code(e.value) == "InvalidArgument"
    # a single small part is a valid (last) part
    r = s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": small["ETag"]}]})
    assert r["ETag"].endswith('-1"')
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="e", UploadId=uid, PartNumber=1, Body=b"x")
    assert error_code(e.value) == "NoSuchUpload"
    uid2 = s3.create_multipart_upload(Bucket=bucket, Key="f")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="f", UploadId=uid2)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="f", UploadId=uid2)
    assert error_code(e.value) == "NoSuchUpload"


def test_multipart_checksums(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="c", ChecksumAlgorithm="CRC32")["UploadId"]
    data = [os.urandom(5 * MiB), b"tail"]
    parts = []
    for n, d in enumerate(data, 1):
        r = s3.upload_part(Bucket=bucket, Key="c", UploadId=uid, PartNumber=n, Body=d,
                           ChecksumAlgorithm="CRC32")
        assert r["ChecksumCRC32"] == base64.b64encode(zlib.crc32(d).to_bytes(4, "big")).decode()
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    r = s3.complete_multipart_upload(Bucket=bucket, Key="c", UploadId=uid,
                                     MultipartUpload={"Parts": parts})
    assert r["ChecksumCRC32"].endswith("-2")
    got = s3.get_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(data)


def test_upload_part_copy(s3, bucket):
    src = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    p1 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    p2 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes={5 * MiB}-{6 * MiB - 1}")
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=3,
                            CopySource={"Bucket": bucket, "Key": "src"},
                            CopySourceRange=f"bytes=0-{7 * MiB}")
    assert error_code(e.value) == "InvalidRange"
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                  {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == src


@pytest.mark.parametrize("use_tls", [False, True])
def test_transfer_manager(request, tmp_path, use_tls):
    """upload_file / download_file: concurrent multipart up, parallel ranged GETs down."""
    s3 = request.getfixturevalue("s3_tls" if use_tls else "s3")
    bucket = request.getfixturevalue("tls_bucket" if use_tls else "bucket")
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(20 * MiB + 17))
    cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB,
                         max_concurrency=4)
    s3.upload_file(str(src), bucket, "big.bin", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == src.stat().st_size and head["ETag"].endswith('-3"')
    dst = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(dst), Config=cfg)
    assert dst.read_bytes() == src.read_bytes()


def test_https_put_is_aws_chunked_and_not_stored_framed(s3_tls, tls_bucket):
    body = b"hello world, this is a small object\n"
    r = s3_tls.put_object(Bucket=tls_bucket, Key="wire.txt", Body=body)
    assert r["ChecksumCRC32"] == "ojUr7w=="
    got = s3_tls.get_object(Bucket=tls_bucket, Key="wire.txt")
    assert got["Body"].read() == body
    assert "ContentEncoding" not in got
    assert got["ContentLength"] == len(body)
