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
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections import Counter
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from kms.audit import read_trail
from tests.wire.conftest import make_client
from tests.wire.sse_helpers import MiB, new_key, sidecar, with_headers

pytestmark = pytest.mark.wire

ROOT = Path(__file__).resolve().parents[2]


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
    # x-amz-checksum-algorithm picks another algorithm; an unknown one is a 400.
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    out = s3.copy_object(Bucket=bucket, Key="doc", CopySource={"Bucket": bucket, "Key": "doc"},
                         ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"],
                         ChecksumAlgorithm="CRC32")
    assert out["CopyObjectResult"]["ChecksumCRC32"] == crc
    assert _head(s3, bucket, "doc")["ChecksumCRC32"] == crc
    with pytest.raises(ClientError) as ei:
        with_headers(make_client(srv), "CopyObject",
                     {"x-amz-checksum-algorithm": "MD4"}).copy_object(
            Bucket=bucket, Key="doc", CopySource={"Bucket": bucket, "Key": "doc"},
            ServerSideEncryption="AES256")
    assert ei.value.response["Error"]["Code"] == "InvalidRequest"


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


# -- coffer s3 reencrypt -----------------------------------------------------------------------

def _env(srv, key: str | None = None, secret: str | None = None) -> dict[str, str]:
    env = srv.client_env()
    if key:
        env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    return env


def _reencrypt_cmd(srv, *args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", "s3", "reencrypt", "--endpoint", srv.endpoint,
            "--data-dir", str(srv.data_dir), "--no-progress", *args]


def reencrypt(srv, *args: str, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(_reencrypt_cmd(srv, *args), capture_output=True, text=True,
                          env=env or _env(srv), cwd=cwd, timeout=600)


def _report(srv, bucket: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "s3", "encryption-report",
                          "--json", "--data-dir", str(srv.data_dir)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return next(b for b in json.loads(out.stdout)["buckets"] if b["bucket"] == bucket)


def _copies(srv, bucket: str) -> list[dict]:
    return [r for r in read_trail(srv.data_dir / "audit")
            if r.get("eventName") == "CopyObject"
            and r["requestParameters"].get("bucketName") == bucket]


def _put_many(s3, bucket: str, items: list[tuple[str, bytes, dict]]) -> None:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda it: s3.put_object(Bucket=bucket, Key=it[0], Body=it[1], **it[2]),
                      items))


def test_reencrypt_1000_objects_interrupted_and_resumed(s3, kms, bucket, srv, tmp_path):
    old, new = new_key(kms), new_key(kms, f"alias/re-{uuid.uuid4().hex[:8]}")
    alias = kms.list_aliases(KeyId=new["KeyId"])["Aliases"][0]["AliasName"]
    modes = [{}, {"ServerSideEncryption": "AES256"},
             {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": old["Arn"]},
             {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": new["Arn"]}]
    # Keys whose UTF-8 binary order differs from UTF-16 order (U+FF5E sorts before U+1F600
    # in UTF-8, after it in UTF-16) and from a case-insensitive one: the resume point is the
    # listing's own order, never one the command computes.
    names = [f"{'dir/' if i % 3 else ''}{chr(0xFF5E) if i % 7 == 0 else ''}"
             f"{chr(0x1F600) if i % 11 == 0 else ''}{'Obj' if i % 2 else 'obj'}-{i:04d}"
             for i in range(1000)]
    bodies = {n: f"object {n} ".encode() * (1 + i % 5) for i, n in enumerate(names)}
    extra = {n: {"ContentType": "text/x-re", "Metadata": {"n": str(i)}}
             if i % 10 == 0 else {} for i, n in enumerate(names)}
    _put_many(s3, bucket, [(n, bodies[n], {**modes[i % 4], **extra[n]})
                           for i, n in enumerate(names)])
    already = {n for i, n in enumerate(names) if i % 4 == 3}
    assert _report(srv, bucket)["byMode"]["none"]["objects"] == 250

    state = tmp_path / "state.json"
    args = ("--bucket", bucket, "--to-key", alias, "--state", str(state), "--jobs", "4")
    proc = subprocess.Popen(_reencrypt_cmd(srv, *args), env=_env(srv), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    done = 0
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            done = sum(json.loads(state.read_bytes())["counts"].values())
        except (OSError, ValueError):
            done = 0
        if done >= 400:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted after" in err
    saved = json.loads(state.read_bytes())
    assert saved["format"] == "coffer-reencrypt-state/1" and 400 <= sum(
        saved["counts"].values()) < 1000
    mid = _report(srv, bucket)
    under_new = sum(r["objects"] for r in mid["byKey"] if r["keyArn"] == new["Arn"])
    assert 250 < under_new < 1000, mid          # half-way: some moved, some not yet

    again = reencrypt(srv, *args)
    assert again.returncode == 0, again.stderr
    assert "resuming after" in again.stderr and "0 failed" in again.stderr
    assert not state.exists()

    for n in names:
        head = s3.head_object(Bucket=bucket, Key=n)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == new["Arn"]
        if extra[n]:
            assert head["ContentType"] == "text/x-re" and head["Metadata"] == \
                extra[n]["Metadata"]
        assert s3.get_object(Bucket=bucket, Key=n)["Body"].read() == bodies[n]
    report = _report(srv, bucket)
    assert report["objects"] == 1000 and report["byMode"]["aws:kms"]["objects"] == 1000
    assert [(r["keyArn"], r["objects"]) for r in report["byKey"]] == [(new["Arn"], 1000)]
    # One audited, successful CopyObject per object that needed it, none for the others:
    # the interrupted run and the resumed one together touched each object exactly once.
    ok = Counter(r["requestParameters"]["key"] for r in _copies(srv, bucket)
                 if "errorCode" not in r)
    assert set(ok) == set(names) - already and set(ok.values()) == {1}
    # A third run finds nothing to do.
    third = reencrypt(srv, *args)
    assert third.returncode == 0 and "0 re-encrypted" in third.stderr, third.stderr
    assert "skipped 1000: already under the target key" in third.stderr


def test_caller_without_decrypt_on_the_old_key_is_denied_per_object(s3, kms, bucket, srv,
                                                                    tmp_path):
    old, new = new_key(kms), new_key(kms)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"secret %d" % i,
                      ServerSideEncryption="aws:kms", SSEKMSKeyId=old["Arn"])
    before = {f"k{i}": sidecar(srv, bucket, f"k{i}") for i in range(3)}
    iam = make_client(srv, "iam")
    user = f"re-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:DescribeKey"],
             "Resource": new["Arn"]}]}))
    ak = iam.create_access_key(UserName=user)["AccessKey"]
    r = reencrypt(srv, "--bucket", bucket, "--to-key", new["KeyId"], "--state",
                  str(tmp_path / "s.json"), env=_env(srv, ak["AccessKeyId"],
                                                     ak["SecretAccessKey"]))
    assert r.returncode == 1, r.stderr
    assert "0 re-encrypted" in r.stderr and "3 failed" in r.stderr
    for i in range(3):
        assert f"failed k{i}: AccessDenied" in r.stderr
        assert sidecar(srv, bucket, f"k{i}") == before[f"k{i}"]      # nothing changed
    denied = [c for c in _copies(srv, bucket) if c.get("errorCode") == "AccessDenied"]
    assert sorted(c["requestParameters"]["key"] for c in denied) == ["k0", "k1", "k2"]
    assert {c["userIdentity"]["userName"] for c in denied} == {user}
    decrypts = [e for e in read_trail(srv.data_dir / "audit")
                if e.get("eventName") == "Decrypt" and e.get("errorCode")
                and e["userIdentity"].get("userName") == user]
    assert len(decrypts) == 3


def test_dry_run_only_unencrypted_sse_c_and_large_objects(s3, kms, bucket, srv, tmp_path):
    key = new_key(kms)
    customer = os.urandom(32)
    big = os.urandom(7 * MiB + 5)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"p", ContentType="text/plain")
    s3.put_object(Bucket=bucket, Key="s3", Body=b"s", ServerSideEncryption="AES256")
    s3.put_object(Bucket=bucket, Key="ssec", Body=b"c", SSECustomerAlgorithm="AES256",
                  SSECustomerKey=customer)
    s3.put_object(Bucket=bucket, Key="big", Body=big, ContentType="video/x-big",
                  Metadata={"a": "1"})
    state = tmp_path / "s.json"
    base = ("--bucket", bucket, "--state", str(state))

    dry = reencrypt(srv, *base, "--to-key", key["Arn"], "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sorted(l.split(":")[0] for l in dry.stdout.splitlines()) == [
        "would re-encrypt big", "would re-encrypt plain", "would re-encrypt s3"]
    assert "SSE-C object" in dry.stderr and not state.exists()
    assert sidecar(srv, bucket, "plain")["meta"].get("sse") is None

    only = reencrypt(srv, *base, "--to-sse-s3", "--only-unencrypted",
                     "--multipart-threshold", str(6 * MiB), "--part-size", str(5 * MiB))
    assert only.returncode == 0, only.stderr
    assert "2 re-encrypted" in only.stderr          # plain and big; s3 and ssec left alone
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ServerSideEncryption"] == "AES256" and head["ContentType"] == "video/x-big"
    assert head["Metadata"] == {"a": "1"} and head["ContentLength"] == len(big)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == big
    assert sidecar(srv, bucket, "ssec")["meta"]["sse"]["mode"] == "SSE-C"

    # A state file of another run is refused before anything is touched.
    state.write_text(json.dumps({"format": "coffer-reencrypt-state/1", "bucket": bucket,
                                 "prefix": "", "target": {"mode": "AES256", "keyArn": None,
                                                          "bucketKey": False},
                                 "onlyUnencrypted": True, "after": "plain", "counts": {},
                                 "failed": []}))
    refused = reencrypt(srv, *base, "--to-key", key["Arn"])
    assert refused.returncode == 2 and "belongs to another run" in refused.stderr
    state.unlink()

    keyfile = tmp_path / "customer.key"
    keyfile.write_bytes(base64.b64encode(customer))
    full = reencrypt(srv, *base, "--to-key", key["Arn"], "--source-sse-c-key-file",
                     str(keyfile))
    assert full.returncode == 0, full.stderr
    assert "4 re-encrypted" in full.stderr
    for k in ("plain", "s3", "ssec", "big"):
        assert s3.head_object(Bucket=bucket, Key=k)["SSEKMSKeyId"] == key["Arn"]
    assert s3.get_object(Bucket=bucket, Key="ssec")["Body"].read() == b"c"
    assert s3.get_object(Bucket=bucket, Key="plain")["ContentType"] == "text/plain"
