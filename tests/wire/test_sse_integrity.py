"""At-rest guarantees on the wire: no plaintext or plaintext key in the data dir, and a tampered
stored object fails its GET (error status, or a truncated body once streaming began), never
returns wrong bytes. Tampering edits the files of a running server's data dir."""
from __future__ import annotations

import base64
import json
import os

import pytest
from botocore.exceptions import ClientError
from urllib3.exceptions import HTTPError as Urllib3Error

from tests.wire.conftest import make_client
from tests.wire.sse_helpers import (MiB, SEG, body_of, data_paths, new_key, sidecar_path)

pytestmark = pytest.mark.wire
STRIDE = SEG + 16                        # one coffer-sse/1 segment on disk


def grep_tree(root, needles: dict[str, bytes]) -> list[tuple[str, str]]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file():
            raw = p.read_bytes()
            hits += [(str(p), name) for name, needle in needles.items() if needle in raw]
    return hits


def forms(secret: bytes) -> dict[str, bytes]:
    return {"raw": secret, "hex": secret.hex().encode(), "HEX": secret.hex().upper().encode(),
            "b64": base64.b64encode(secret), "b64url": base64.urlsafe_b64encode(secret)}


def test_no_plaintext_or_key_bytes_on_disk(server, s3, bucket):
    kms = make_client(server, "kms")
    key = new_key(kms)
    marker = b"COFFER-MARKER-" + os.urandom(16).hex().encode()
    small = marker * 3
    big = (marker + os.urandom(SEG)) * 3
    s3.put_object(Bucket=bucket, Key="kms", Body=small, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["Arn"])
    s3.put_object(Bucket=bucket, Key="bk", Body=big, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["Arn"], BucketKeyEnabled=True)
    s3.put_object(Bucket=bucket, Key="s3", Body=big)
    mp = s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="aws:kms",
                                    SSEKMSKeyId=key["Arn"])
    p1 = marker + os.urandom(5 * MiB)
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=mp["UploadId"], PartNumber=1,
                        Body=p1)["ETag"]
    # A pending (not completed) part is on disk too: it must be ciphertext as well.
    mp2 = s3.create_multipart_upload(Bucket=bucket, Key="pending")
    s3.upload_part(Bucket=bucket, Key="pending", UploadId=mp2["UploadId"], PartNumber=1,
                   Body=marker)
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=mp["UploadId"], PartNumber=2,
                        Body=marker)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=mp["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                            {"PartNumber": 2, "ETag": e2}]})
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "kms"},
                   ServerSideEncryption="aws:kms", SSEKMSKeyId=key["KeyId"])
    for k, want in [("kms", small), ("bk", big), ("s3", big), ("mp", p1 + marker),
                    ("copy", small)]:
        assert body_of(s3, bucket, k) == want
    dk = kms.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256",
                               EncryptionContext={"aws:s3:arn": f"arn:aws:s3:::{bucket}/x"})
    kms.decrypt(CiphertextBlob=dk["CiphertextBlob"],
                EncryptionContext={"aws:s3:arn": f"arn:aws:s3:::{bucket}/x"})
    needles = {"marker": marker, "marker-hex": marker.hex().encode(),
               "marker-b64": base64.b64encode(marker)[:40]}
    needles.update({f"datakey-{n}": v for n, v in forms(dk["Plaintext"]).items()})
    assert grep_tree(server.data_dir, needles) == []
    # The files that exist do hold what the design says: wrapped key, ARN, context, format.
    rec = json.loads(sidecar_path(server, bucket, "kms").read_bytes())["meta"]["sse"]
    assert {"wrapped_key", "key_arn", "context", "stream"} <= set(rec)
    assert rec["stream"]["format"] == "coffer-sse/1"


# -- tampering -------------------------------------------------------------------------------------

def _put(s3, bucket, key, size, **kw) -> bytes:
    data = os.urandom(size)
    s3.put_object(Bucket=bucket, Key=key, Body=data, **kw)
    assert body_of(s3, bucket, key) == data
    return data


def _assert_get_fails(s3, bucket, key, data: bytes, **kw) -> None:
    """The GET errors out, or (if streaming had begun) the client sees a broken body; it never
    completes with bytes other than the original's."""
    try:
        got = s3.get_object(Bucket=bucket, Key=key, **kw)
    except ClientError as exc:
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status >= 400
        return
    try:
        body = got["Body"].read()
    except (Urllib3Error, OSError, Exception) as exc:  # noqa: BLE001 - any broken stream
        assert "IncompleteRead" in repr(exc) or "Connection" in repr(exc) \
            or "ResponseStreamingError" in type(exc).__name__ or isinstance(exc, OSError), exc
        return
    raise AssertionError(f"GET of tampered {key} completed with {len(body)} bytes "
                         f"(original: {body == data})")


def _edit(path, fn) -> None:
    raw = bytearray(path.read_bytes())
    out = fn(raw)
    path.write_bytes(bytes(raw if out is None else out))


MODES = {"kms": {"ServerSideEncryption": "aws:kms"}, "s3": {"ServerSideEncryption": "AES256"},
         "bk": {"ServerSideEncryption": "aws:kms", "BucketKeyEnabled": True}}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_tampered_data_fails(server, s3, bucket, mode):
    kw = MODES[mode]
    size = 3 * SEG + 100
    cases = {
        "flip-first": lambda raw: raw.__setitem__(10, raw[10] ^ 1),
        "flip-tag": lambda raw: raw.__setitem__(STRIDE - 1, raw[STRIDE - 1] ^ 0x80),
        "flip-last": lambda raw: raw.__setitem__(len(raw) - 1, raw[-1] ^ 1),
        "drop-byte": lambda raw: raw.__delitem__(STRIDE + 5),
        "drop-last-byte": lambda raw: raw.__delitem__(len(raw) - 1),
        "append-byte": lambda raw: raw.append(0),
        "reorder-segments": lambda raw: raw[STRIDE:2 * STRIDE] + raw[:STRIDE] + raw[2 * STRIDE:],
        "truncate-segment": lambda raw: raw[:3 * STRIDE],
        "duplicate-segment": lambda raw: raw[:STRIDE] + raw[:STRIDE] + raw[2 * STRIDE:],
    }
    for name, fn in cases.items():
        key = f"{mode}-{name}"
        data = _put(s3, bucket, key, size, **kw)
        [path] = data_paths(server, bucket, key)
        _edit(path, fn)
        _assert_get_fails(s3, bucket, key, data)
        _assert_get_fails(s3, bucket, key, data, Range=f"bytes=0-{size - 1}")
        # Also when the stored size in the record is adjusted to the tampered file.
        sc = sidecar_path(server, bucket, key)
        doc = json.loads(sc.read_bytes())
        doc["stored_size"] = path.stat().st_size
        sc.write_text(json.dumps(doc))
        _assert_get_fails(s3, bucket, key, data)
    log = server.log.read_text()
    assert "failed authentication" in log


def test_tampered_empty_and_one_byte_objects(server, s3, bucket):
    for size in (0, 1):
        data = _put(s3, bucket, f"e{size}", size, ServerSideEncryption="aws:kms")
        [path] = data_paths(server, bucket, f"e{size}")
        _edit(path, lambda raw: raw.__setitem__(0, raw[0] ^ 1))
        _assert_get_fails(s3, bucket, f"e{size}", data)


def test_tamper_after_streaming_began_truncates(server, s3, bucket):
    size = 3 * MiB
    data = _put(s3, bucket, "late", size, ServerSideEncryption="aws:kms")
    [path] = data_paths(server, bucket, "late")
    pos = 2 * MiB + 100
    _edit(path, lambda raw: raw.__setitem__(pos, raw[pos] ^ 1))
    _assert_get_fails(s3, bucket, "late", data)


def test_swapped_sse_records_fail(server, s3, bucket):
    kms = make_client(server, "kms")
    key = new_key(kms)
    for kw in ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["Arn"]},
               {"ServerSideEncryption": "AES256"},
               {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["Arn"],
                "BucketKeyEnabled": True}):
        a = _put(s3, bucket, "a", SEG + 1, **kw)
        b = _put(s3, bucket, "b", SEG + 1, **kw)
        pa, pb = sidecar_path(server, bucket, "a"), sidecar_path(server, bucket, "b")
        da, db = json.loads(pa.read_bytes()), json.loads(pb.read_bytes())
        da["meta"]["sse"], db["meta"]["sse"] = db["meta"]["sse"], da["meta"]["sse"]
        pa.write_text(json.dumps(da))
        pb.write_text(json.dumps(db))
        _assert_get_fails(s3, bucket, "a", a)
        _assert_get_fails(s3, bucket, "b", b)
        # Swapping the data files (same sizes) instead of the records fails as well.
        s3.put_object(Bucket=bucket, Key="a", Body=a, **kw)
        s3.put_object(Bucket=bucket, Key="b", Body=b, **kw)
        [fa], [fb] = data_paths(server, bucket, "a"), data_paths(server, bucket, "b")
        ra, rb = fa.read_bytes(), fb.read_bytes()
        fa.write_bytes(rb)
        fb.write_bytes(ra)
        _assert_get_fails(s3, bucket, "a", a)
        _assert_get_fails(s3, bucket, "b", b)


def test_tampered_multipart_object(server, s3, bucket):
    kms = make_client(server, "kms")
    key = new_key(kms)
    p1, p2 = os.urandom(5 * MiB), os.urandom(5 * MiB)
    for case in ("swap-parts", "swap-part-records", "flip"):
        k = f"mp-{case}"
        mp = s3.create_multipart_upload(Bucket=bucket, Key=k, ServerSideEncryption="aws:kms",
                                        SSEKMSKeyId=key["Arn"])
        etags = [s3.upload_part(Bucket=bucket, Key=k, UploadId=mp["UploadId"], PartNumber=n,
                                Body=body)["ETag"] for n, body in ((1, p1), (2, p2))]
        s3.complete_multipart_upload(Bucket=bucket, Key=k, UploadId=mp["UploadId"],
                                     MultipartUpload={"Parts": [
                                         {"PartNumber": n, "ETag": e}
                                         for n, e in enumerate(etags, 1)]})
        f1, f2 = data_paths(server, bucket, k)
        if case == "swap-parts":
            r1, r2 = f1.read_bytes(), f2.read_bytes()
            f1.write_bytes(r2)
            f2.write_bytes(r1)
        elif case == "swap-part-records":
            sc = sidecar_path(server, bucket, k)
            doc = json.loads(sc.read_bytes())
            parts = doc["meta"]["sse"]["parts"]
            parts[0]["stream"], parts[1]["stream"] = parts[1]["stream"], parts[0]["stream"]
            sc.write_text(json.dumps(doc))
        else:
            _edit(f2, lambda raw: raw.__setitem__(3, raw[3] ^ 4))
        _assert_get_fails(s3, bucket, k, p1 + p2, Range=f"bytes={5 * MiB - 10}-{5 * MiB + 10}")
        _assert_get_fails(s3, bucket, k, p1 + p2, PartNumber=2)
        _assert_get_fails(s3, bucket, k, p1 + p2)
