"""Finding 19 of issue 11: everything under the data dir is private to the server's user.

The data dir is made 0777 under umask 000 before ``coffer serve`` starts (a user's careless
``mkdir``), the server and the ``coffer`` subcommands inherit that umask, and every kind of state
is created: buckets, objects (SSE-S3 and SSE-KMS), a multipart upload, KMS keys and aliases, IAM
users, access keys and policies, a second account, TLS files, audit records and a digest.
Afterwards every file must be 0600 and every directory 0700.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.wire.conftest import make_client, new_account
from tests.wire.server import start_server

pytestmark = pytest.mark.wire


def _loose(root: Path) -> list[str]:
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                bad.append(f"{path} is a symlink")
                continue
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                bad.append(f"{path}: {stat.S_IMODE(st.st_mode):04o}")
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode != 0o700:
        bad.append(f"{root}: {mode:04o}")
    return bad


@pytest.fixture
def permissive_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def test_every_file_0600_and_dir_0700_whatever_the_umask(tmp_path, permissive_umask):
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o777)
    srv = start_server(data, tls=True)
    try:
        s3, kms, iam = (make_client(srv, svc) for svc in ("s3", "kms", "iam"))
        bucket = f"m-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="plain", Body=b"x" * 1000,
                      ContentType="text/plain", Metadata={"a": "b"})
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=f"alias/m-{uuid.uuid4().hex[:8]}", TargetKeyId=key_id)
        s3.put_object(Bucket=bucket, Key="kms", Body=b"secret", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key_id)
        up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"p" * 100)
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
                "Resource": f"arn:aws:s3:::{bucket}"}]}))
        user = f"u-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        iam.create_access_key(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        new_account(srv)                # `coffer account create`, under umask 000 too
        make_client(srv, "cloudtrail").lookup_events(MaxResults=5)
    finally:
        srv.stop()
    # `coffer audit digest` on the stopped server's data dir: trail files roll, a digest and
    # its signing key's state are written.
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "digest",
                          "--data-dir", str(data)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    names = {p.name for p in data.rglob("*")}
    assert {"kms.db", "root.key", "iam.db", "root-credentials.json"} <= names, names
    assert any(p.suffix == ".pem" for p in (data / "tls").iterdir())
    assert _loose(data) == []
    key_file = data.with_name(data.name + ".iam.key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_data_dir_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to chown the data dir to another user")
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 65534, 65534)
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--port", "1",
                          "--data-dir", str(data)], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "owned by uid 65534" in out.stderr
