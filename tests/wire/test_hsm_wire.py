"""A real ``coffer serve`` with its root key in a SoftHSM2 token (``--root-key pkcs11``) and a
CloudHSM-style custom key store on another token, driven by boto3 and the aws CLI exactly as
against AWS KMS: create-custom-key-store, keys with Origin AWS_CLOUDHSM, disconnect ->
Unavailable, and S3 SSE-KMS with an HSM key."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from kms.crypto.tls import ensure_self_signed
from tests.wire.clients import AWS
from tests.wire.conftest import make_client
from tests.wire.server import start_server

pytestmark = pytest.mark.wire

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hsm_server(softhsm, tmp_path_factory):
    env = softhsm.env("wire-root")
    init = subprocess.run([sys.executable, "-m", "gateway.cli", "kms", "init-hsm"], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)
    assert init.returncode == 0, init.stderr
    assert softhsm.pin not in init.stdout + init.stderr
    srv = start_server(tmp_path_factory.mktemp("coffer-hsm") / "data",
                       extra_args=["--pkcs11-module", softhsm.module, "--root-key", "pkcs11"],
                       env=env)
    yield srv
    srv.stop()
    assert softhsm.pin not in srv.log.read_text()


@pytest.fixture(scope="module")
def kms(hsm_server):
    return make_client(hsm_server, "kms")


@pytest.fixture(scope="module")
def trust_anchor(tmp_path_factory) -> Path:
    return ensure_self_signed(tmp_path_factory.mktemp("ca")).ca


def aws(srv, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([AWS, "--endpoint-url", srv.endpoint, *args], env=srv.client_env(),
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"aws {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def store_id(hsm_server, kms, softhsm, trust_anchor):
    # Exactly the command of the AWS docs, with a token label as the cluster id.
    out = aws(hsm_server, "kms", "create-custom-key-store", "--custom-key-store-name",
              "wire-store", "--cloud-hsm-cluster-id", "cluster-wire0000001", "--key-store-password",
              softhsm.pin, "--trust-anchor-certificate", f"file://{trust_anchor}")
    sid = json.loads(out.stdout)["CustomKeyStoreId"]
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    return sid


def test_root_key_is_in_the_token(hsm_server):
    assert not (hsm_server.data_dir / "kms" / "root.key").exists()


def test_custom_key_store_lifecycle(hsm_server, kms, store_id, trust_anchor):
    (cks,) = kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"]
    assert cks["ConnectionState"] == "CONNECTED" and cks["CloudHsmClusterId"] == "cluster-wire0000001"
    assert cks["TrustAnchorCertificate"] == trust_anchor.read_text()
    md = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=store_id)["KeyMetadata"]
    assert md["Origin"] == "AWS_CLOUDHSM" and md["CustomKeyStoreId"] == store_id
    k = md["KeyId"]
    blob = kms.encrypt(KeyId=k, Plaintext=b"hello hsm",
                       EncryptionContext={"p": "q"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"p": "q"})[
        "Plaintext"] == b"hello hsm"
    dk = kms.generate_data_key(KeyId=k, KeySpec="AES_256")
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
    assert len(kms.generate_random(NumberOfBytes=32, CustomKeyStoreId=store_id)[
        "Plaintext"]) == 32
    with pytest.raises(ClientError) as err:
        kms.delete_custom_key_store(CustomKeyStoreId=store_id)
    assert err.value.response["Error"]["Code"] in ("CustomKeyStoreHasCMKsException",
                                                   "CustomKeyStoreInvalidStateException")
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    assert kms.describe_key(KeyId=k)["KeyMetadata"]["KeyState"] == "Unavailable"
    with pytest.raises(ClientError) as err:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"p": "q"})
    assert err.value.response["Error"]["Code"] == "KMSInvalidStateException"
    with pytest.raises(ClientError) as err:
        kms.delete_custom_key_store(CustomKeyStoreId=store_id)
    assert err.value.response["Error"]["Code"] == "CustomKeyStoreHasCMKsException"
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert kms.describe_key(KeyId=k)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"p": "q"})[
        "Plaintext"] == b"hello hsm"
    with pytest.raises(ClientError) as err:
        kms.create_custom_key_store(CustomKeyStoreName="x", CloudHsmClusterId="cluster-nosuch00001",
                                    KeyStorePassword="1234567",
                                    TrustAnchorCertificate=trust_anchor.read_text())
    assert err.value.response["Error"]["Code"] == "CloudHsmClusterNotFoundException"


def test_s3_sse_kms_with_hsm_key(hsm_server, kms, store_id, tmp_path):
    k = kms.create_key(Origin="AWS_CLOUDHSM", CustomKeyStoreId=store_id)["KeyMetadata"]["Arn"]
    bucket = f"hsm-{uuid.uuid4().hex[:10]}"
    aws(hsm_server, "s3", "mb", f"s3://{bucket}")
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(300_000))
    aws(hsm_server, "s3", "cp", str(src), f"s3://{bucket}/obj", "--sse", "aws:kms",
        "--sse-kms-key-id", k)
    head = json.loads(aws(hsm_server, "s3api", "head-object", "--bucket", bucket, "--key",
                          "obj").stdout)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == k
    out = tmp_path / "out.bin"
    aws(hsm_server, "s3", "cp", f"s3://{bucket}/obj", str(out))
    assert out.read_bytes() == src.read_bytes()
