"""Multipart checksums of type FULL_OBJECT and COMPOSITE (issue 14), with boto3 and the aws CLI.

AWS: https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
("Using part-level checksums for multipart uploads": FULL_OBJECT for the CRCs, COMPOSITE for
all but CRC64NVME, the ``-N`` suffix of a composite value), API_CreateMultipartUpload.html
(x-amz-checksum-type) and API_CompleteMultipartUpload.html; the error texts are AWS's recorded
answers in shared/reference/s3-surface.md section 10.
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import zlib

import pytest
from awscrt import checksums as crt
from botocore.exceptions import ClientError

from tests.wire.clients import AWS, error_code
from tests.wire.conftest import make_client
from tests.wire.sse_helpers import MiB, new_key, sidecar_path

pytestmark = pytest.mark.wire

CRC = {"CRC32": (lambda d: zlib.crc32(d), 4), "CRC32C": (crt.crc32c, 4),
       "CRC64NVME": (crt.crc64nvme, 8)}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _crc(alg: str, data: bytes) -> str:
    fn, size = CRC[alg]
    return _b64(fn(data).to_bytes(size, "big"))


def _upload(s3, bucket, key, parts, alg, kind=None, part_checksum=True, **extra):
    kw = {"ChecksumType": kind} if kind else {}
    mp = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=alg, **kw, **extra)
    done = []
    for n, data in enumerate(parts, 1):
        args = {"ChecksumAlgorithm": alg} if part_checksum else {}
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=mp["UploadId"], PartNumber=n,
                           Body=data, **args, **{k: v for k, v in extra.items()
                                                  if k.startswith("SSECustomer")})
        entry = {"PartNumber": n, "ETag": r["ETag"]}
        if f"Checksum{alg}" in r:
            entry[f"Checksum{alg}"] = r[f"Checksum{alg}"]
        done.append(entry)
    return mp, done


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "CRC64NVME"])
def test_full_object_checksum_combines_the_parts(s3, bucket, alg):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 17), b"tail"]
    whole = _crc(alg, b"".join(parts))
    mp, done = _upload(s3, bucket, "f", parts, alg, "FULL_OBJECT")
    assert mp["ChecksumType"] == "FULL_OBJECT"
    out = s3.complete_multipart_upload(Bucket=bucket, Key="f", UploadId=mp["UploadId"],
                                       MultipartUpload={"Parts": done}, ChecksumType="FULL_OBJECT",
                                       **{f"Checksum{alg}": whole})
    assert (out[f"Checksum{alg}"], out["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = s3.head_object(Bucket=bucket, Key="f", ChecksumMode="ENABLED")
    assert (head[f"Checksum{alg}"], head["ChecksumType"]) == (whole, "FULL_OBJECT")
    # botocore checks the whole body against the FULL_OBJECT value it is given.
    got = s3.get_object(Bucket=bucket, Key="f", ChecksumMode="ENABLED")
    assert got[f"Checksum{alg}"] == whole
    assert got["Body"].read() == b"".join(parts)
    # Ranged reads carry no checksum; a FULL_OBJECT part read neither (not the whole object).
    ranged = s3.get_object(Bucket=bucket, Key="f", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert f"Checksum{alg}" not in ranged
    part = s3.get_object(Bucket=bucket, Key="f", PartNumber=2, ChecksumMode="ENABLED")
    assert f"Checksum{alg}" not in part and part["PartsCount"] == 3
    assert part["Body"].read() == parts[1]


def test_crc64nvme_defaults_to_full_object_and_parts_without_checksums(server, bucket):
    """Parts sent without a checksum still get the upload's algorithm (the gateway computes
    it), so the FULL_OBJECT value exists: AWS computes part CRCs the client did not send."""
    s3 = make_client(server, request_checksum_calculation="when_required")
    parts = [os.urandom(5 * MiB), b"end"]
    mp, done = _upload(s3, bucket, "n", parts, "CRC64NVME", part_checksum=False)
    assert mp["ChecksumType"] == "FULL_OBJECT"
    out = s3.complete_multipart_upload(Bucket=bucket, Key="n", UploadId=mp["UploadId"],
                                       MultipartUpload={"Parts": done})
    assert out["ChecksumCRC64NVME"] == _crc("CRC64NVME", b"".join(parts))
    assert out["ChecksumType"] == "FULL_OBJECT"


def test_composite_checksum_and_part_reads(s3, bucket):
    parts = [os.urandom(5 * MiB), b"tail"]
    mp, done = _upload(s3, bucket, "c", parts, "CRC32C")
    assert mp["ChecksumType"] == "COMPOSITE"
    raws = [crt.crc32c(p).to_bytes(4, "big") for p in parts]
    composite = f"{_b64(crt.crc32c(b''.join(raws)).to_bytes(4, 'big'))}-2"
    out = s3.complete_multipart_upload(Bucket=bucket, Key="c", UploadId=mp["UploadId"],
                                       MultipartUpload={"Parts": done})
    assert (out["ChecksumCRC32C"], out["ChecksumType"]) == (composite, "COMPOSITE")
    head = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32C"], head["ChecksumType"]) == (composite, "COMPOSITE")
    # ?partNumber of a COMPOSITE object answers with that part's checksum (botocore checks it).
    for n, data in enumerate(parts, 1):
        got = s3.get_object(Bucket=bucket, Key="c", PartNumber=n, ChecksumMode="ENABLED")
        assert got["ChecksumCRC32C"] == _crc("CRC32C", data)
        assert got["Body"].read() == data
    listed = s3.list_parts  # the upload is gone; ListParts of a live one shows its type
    mp2, _ = _upload(s3, bucket, "c2", [b"x"], "SHA256")
    assert listed(Bucket=bucket, Key="c2", UploadId=mp2["UploadId"])["ChecksumType"] == \
        "COMPOSITE"


def test_full_object_value_on_complete_is_checked(s3, bucket):
    parts = [os.urandom(5 * MiB), b"tail"]
    mp, done = _upload(s3, bucket, "w", parts, "CRC32", "FULL_OBJECT")
    complete = dict(Bucket=bucket, Key="w", UploadId=mp["UploadId"],
                    MultipartUpload={"Parts": done})
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(**complete, ChecksumCRC32=_crc("CRC32", b"other"))
    assert error_code(e) == "BadDigest"
    assert "crc32 you specified did not match" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(**complete, ChecksumCRC32="not-base64!")
    assert error_code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(**complete, ChecksumType="COMPOSITE")
    assert error_code(e) == "InvalidRequest"
    assert "must use the same checksum mode" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(**complete, MpuObjectSize=3)
    assert error_code(e) == "InvalidRequest"
    # The upload survived every refusal.
    out = s3.complete_multipart_upload(**complete, ChecksumCRC32=_crc("CRC32", b"".join(parts)),
                                       MpuObjectSize=5 * MiB + 4)
    assert out["ChecksumType"] == "FULL_OBJECT"


@pytest.mark.parametrize("alg,kind,message", [
    ("SHA256", "FULL_OBJECT", "The FULL_OBJECT checksum type cannot be used with the sha256 "
                              "checksum algorithm."),
    ("SHA1", "FULL_OBJECT", "The FULL_OBJECT checksum type cannot be used with the sha1 "
                            "checksum algorithm."),
    ("CRC64NVME", "COMPOSITE", "The COMPOSITE checksum type cannot be used with the crc64nvme "
                               "checksum algorithm."),
])
def test_create_refuses_impossible_types(s3, bucket, alg, kind, message):
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm=alg,
                                   ChecksumType=kind)
    assert (error_code(e), e.value.response["Error"]["Message"]) == ("InvalidRequest", message)


def test_create_type_without_algorithm(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumType="FULL_OBJECT")
    assert error_code(e) == "InvalidRequest"


def test_part_checksums_listed_on_complete(s3, bucket):
    parts = [os.urandom(5 * MiB), b"tail"]
    mp, done = _upload(s3, bucket, "p", parts, "SHA256")
    base = dict(Bucket=bucket, Key="p", UploadId=mp["UploadId"])
    wrong = [dict(done[0], ChecksumSHA256=_b64(hashlib.sha256(b"x").digest())), done[1]]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(**base, MultipartUpload={"Parts": wrong})
    assert error_code(e) == "InvalidPart"       # not BadDigest (s3-surface.md section 10)
    missing = [{k: v for k, v in done[0].items() if k != "ChecksumSHA256"}, done[1]]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(**base, MultipartUpload={"Parts": missing})
    assert error_code(e) == "InvalidRequest"
    assert "It was missing for part 1" in e.value.response["Error"]["Message"]
    other = [{"PartNumber": 1, "ETag": done[0]["ETag"],
              "ChecksumCRC32": _crc("CRC32", parts[0])}, done[1]]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(**base, MultipartUpload={"Parts": other})
    assert error_code(e) == "BadDigest"
    s3.complete_multipart_upload(**base, MultipartUpload={"Parts": done})


def test_part_in_another_algorithm_is_refused(s3, bucket):
    mp = s3.create_multipart_upload(Bucket=bucket, Key="a", ChecksumAlgorithm="SHA256")
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="a", UploadId=mp["UploadId"], PartNumber=1,
                       Body=b"x", ChecksumAlgorithm="CRC32")
    assert error_code(e) == "InvalidRequest"
    assert e.value.response["Error"]["Message"] == ("Checksum Type mismatch occurred, expected "
                                                    "checksum Type: sha256, actual checksum "
                                                    "Type: crc32")


def test_sse_kms_full_object_checksum_is_sealed(server, s3, kms, bucket):
    """The FULL_OBJECT value and every part's are derived from the plaintext: for SSE-KMS they
    are stored sealed and returned only after the caller's decrypt (HeadObject ChecksumMode)."""
    key = new_key(kms)
    parts = [os.urandom(5 * MiB), os.urandom(999)]
    whole = _crc("CRC32", b"".join(parts))
    mp, done = _upload(s3, bucket, "s", parts, "CRC32", "FULL_OBJECT",
                       ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    out = s3.complete_multipart_upload(Bucket=bucket, Key="s", UploadId=mp["UploadId"],
                                       MultipartUpload={"Parts": done})
    assert out["ChecksumCRC32"] == whole
    record = sidecar_path(server, bucket, "s").read_bytes()
    for value in [whole, *(_crc("CRC32", p) for p in parts)]:
        assert value.encode() not in record
    got = s3.get_object(Bucket=bucket, Key="s", ChecksumMode="ENABLED")
    assert (got["ChecksumCRC32"], got["ChecksumType"]) == (whole, "FULL_OBJECT")
    assert got["Body"].read() == b"".join(parts)


def test_aws_cli_multipart_copy_round_trip(server, bucket, tmp_path):
    """aws s3 cp splits a large file into parts with the CLI's default checksum; the object's
    checksum comes back on head-object --checksum-mode and the download verifies it."""
    src = tmp_path / "big"
    src.write_bytes(os.urandom(9 * MiB))
    env = server.client_env()
    run = lambda *a: subprocess.run([AWS, "--endpoint-url", server.endpoint, *a], env=env,
                                    capture_output=True, text=True, timeout=180)
    up = run("s3", "cp", str(src), f"s3://{bucket}/big")
    assert up.returncode == 0, up.stderr
    down = run("s3", "cp", f"s3://{bucket}/big", str(tmp_path / "back"))
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    mp = run("s3api", "create-multipart-upload", "--bucket", bucket, "--key", "cli",
             "--checksum-algorithm", "CRC32C", "--checksum-type", "FULL_OBJECT")
    assert mp.returncode == 0 and '"ChecksumType": "FULL_OBJECT"' in mp.stdout, mp.stderr
    bad = run("s3api", "create-multipart-upload", "--bucket", bucket, "--key", "cli",
              "--checksum-algorithm", "SHA1", "--checksum-type", "FULL_OBJECT")
    assert bad.returncode != 0 and "InvalidRequest" in bad.stderr
