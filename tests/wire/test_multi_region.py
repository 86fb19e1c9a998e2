"""Multi-region keys and regional buckets on the wire: boto3 clients in two regions and the
``aws kms`` CLI with ``--region`` against one ``coffer serve``."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kms.audit import read_trail

from tests.wire.conftest import make_client

EU = "eu-west-1"


def client(server, service: str, region: str):
    return boto3.client(service, endpoint_url=server.endpoint, region_name=region,
                        aws_access_key_id=server.access_key,
                        aws_secret_access_key=server.secret_key,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                      s3={"addressing_style": "path"}))


@pytest.fixture(scope="module")
def kms_a(server):
    return make_client(server, "kms")


@pytest.fixture(scope="module")
def kms_b(server):
    return client(server, "kms", EU)


def signed_get(server, path: str, region: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="GET", url=server.endpoint + path)
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", region).add_auth(req)
    raw = urllib.request.Request(req.url, headers=dict(req.headers.items()), method="GET")
    try:
        with urllib.request.urlopen(raw, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def test_replicate_describe_encrypt_in_a_decrypt_in_b(kms_a, kms_b, server):
    key_id = kms_a.create_key(MultiRegion=True, Description="mrk")["KeyMetadata"]["KeyId"]
    assert key_id.startswith("mrk-")
    rep = kms_a.replicate_key(KeyId=key_id, ReplicaRegion=EU, Description="eu",
                              Tags=[{"TagKey": "k", "TagValue": "v"}])
    assert rep["ReplicaKeyMetadata"]["Arn"].startswith(f"arn:aws:kms:{EU}:")
    conf = kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]
    assert conf["MultiRegionKeyType"] == "REPLICA"
    assert conf["PrimaryKey"]["Region"] == server.region
    blob = kms_a.encrypt(KeyId=key_id, Plaintext=b"hello",
                         EncryptionContext={"p": "q"})["CiphertextBlob"]
    assert kms_b.decrypt(CiphertextBlob=blob, EncryptionContext={"p": "q"})["Plaintext"] \
        == b"hello"
    # Rotate the primary: old and new ciphertexts decrypt in both regions.
    kms_a.rotate_key_on_demand(KeyId=key_id)
    new = kms_b.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
    for c in (kms_a, kms_b):
        assert c.decrypt(CiphertextBlob=blob, EncryptionContext={"p": "q"})["Plaintext"] \
            == b"hello"
        assert c.decrypt(CiphertextBlob=new)["Plaintext"] == b"new"
    with pytest.raises(ClientError) as exc:
        kms_b.rotate_key_on_demand(KeyId=key_id)
    assert code(exc) == "UnsupportedOperationException"
    # Update the primary region, then delete the replica (now in us-east-1).
    kms_a.update_primary_region(KeyId=key_id, PrimaryRegion=EU)
    assert kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "MultiRegionKeyType"] == "PRIMARY"
    out = kms_b.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingReplicaDeletion"
    out = kms_a.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion"


def test_single_region_key_is_not_in_the_other_region(kms_a, kms_b):
    key_id = kms_a.create_key()["KeyMetadata"]["KeyId"]
    blob = kms_a.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(ClientError) as exc:
        kms_b.describe_key(KeyId=key_id)
    assert code(exc) == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        kms_b.decrypt(CiphertextBlob=blob)
    assert code(exc) == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        kms_a.replicate_key(KeyId=key_id, ReplicaRegion=EU)
    assert code(exc) == "UnsupportedOperationException"


def test_aws_cli_with_region(server, kms_a, tmp_path):
    aws = Path(sys.executable).with_name("aws")
    base = [str(aws), "--endpoint-url", server.endpoint, "--output", "json", "kms"]

    def run(*args: str, region: str = server.region) -> dict:
        out = subprocess.run([*base, *args, "--region", region], env=server.client_env(),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout or "{}")
    key_id = run("create-key", "--multi-region")["KeyMetadata"]["KeyId"]
    run("replicate-key", "--key-id", key_id, "--replica-region", EU)
    meta = run("describe-key", "--key-id", key_id, region=EU)["KeyMetadata"]
    assert meta["MultiRegion"] is True and meta["Arn"].startswith(f"arn:aws:kms:{EU}:")
    blob = kms_a.encrypt(KeyId=key_id, Plaintext=b"cli")["CiphertextBlob"]
    (tmp_path / "blob").write_bytes(blob)
    got = run("decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'blob'}", region=EU)
    assert base64.b64decode(got["Plaintext"]) == b"cli"


def test_regional_buckets_and_cross_region_copy(server, kms_a, kms_b):
    s3_a, s3_b = make_client(server), client(server, "s3", EU)
    src, dst = f"mr-src-{uuid.uuid4().hex[:8]}", f"mr-dst-{uuid.uuid4().hex[:8]}"
    s3_a.create_bucket(Bucket=src)
    s3_b.create_bucket(Bucket=dst, CreateBucketConfiguration={"LocationConstraint": EU})
    assert s3_b.get_bucket_location(Bucket=dst)["LocationConstraint"] == EU
    # Signed for the wrong region: AuthorizationHeaderMalformed naming the right one (boto3
    # itself follows it, so sign by hand here).
    status, body = signed_get(server, f"/{dst}?location", server.region)
    assert status == 400 and b"<Code>AuthorizationHeaderMalformed</Code>" in body
    assert f"<Region>{EU}</Region>".encode() in body
    assert f"the region '{server.region}' is wrong; expecting '{EU}'".encode() in body
    assert s3_a.put_object(Bucket=dst, Key="x", Body=b"x")   # boto3's region redirect
    key_id = kms_a.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms_a.replicate_key(KeyId=key_id, ReplicaRegion=EU)
    single = kms_a.create_key()["KeyMetadata"]["KeyId"]
    s3_a.put_object(Bucket=src, Key="obj", Body=b"payload", ServerSideEncryption="aws:kms",
                    SSEKMSKeyId=key_id)
    # A key of another region is KMS.NotFoundException for the bucket's region.
    with pytest.raises(ClientError) as exc:
        s3_b.put_object(Bucket=dst, Key="bad", Body=b"x", ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=single)
    assert code(exc) == "KMS.NotFoundException"
    out = s3_b.copy_object(Bucket=dst, Key="copy", CopySource={"Bucket": src, "Key": "obj"},
                           ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
    assert f":{EU}:" in out["SSEKMSKeyId"]
    got = s3_b.get_object(Bucket=dst, Key="copy")
    assert got["Body"].read() == b"payload"
    assert f":{EU}:" in got["SSEKMSKeyId"]
    # Audited in the bucket's region, and so are the KMS calls S3 made for it.
    rid = got["ResponseMetadata"]["RequestId"]
    linked = [r for r in read_trail(server.data_dir / "audit") if r.get("requestID") == rid]
    assert {r["eventName"] for r in linked} >= {"GetObject", "Decrypt"}
    assert {r["awsRegion"] for r in linked} == {EU}
