"""The KMS JSON API on the shared endpoint, with boto3's kms client and `aws kms`."""
from __future__ import annotations

import base64
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.wire.clients import aws_json, error_code
from tests.wire.conftest import make_client

pytestmark = pytest.mark.wire



def test_key_lifecycle_and_aliases(kms):
    meta = kms.create_key(Description="lifecycle")["KeyMetadata"]
    key_id, arn = meta["KeyId"], meta["Arn"]
    assert arn.startswith("arn:aws:kms:us-east-1:") and arn.endswith(key_id)
    assert meta["KeyState"] == "Enabled" and meta["KeySpec"] == "SYMMETRIC_DEFAULT"
    alias = f"alias/life-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    alias_arn = arn.rsplit(":", 1)[0] + ":" + alias
    for ref in (key_id, arn, alias, alias_arn):
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"] == key_id
    assert key_id in [k["KeyId"] for k in kms.list_keys()["Keys"]]
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=alias, Plaintext=b"x")
    assert error_code(e.value) == "DisabledException"
    kms.enable_key(KeyId=key_id)
    out = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion"
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert error_code(e.value) == "KMSInvalidStateException"
    with pytest.raises(ClientError) as e:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=3)
    assert error_code(e.value) in ("ValidationException", "KMSInvalidStateException")
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


def test_encrypt_decrypt_context_and_limits(kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionContext={"app": "x"})
    out = kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"app": "x"})
    assert out["Plaintext"] == b"secret" and out["KeyId"].endswith(key_id)
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"app": "y"})
    assert error_code(e.value) == "InvalidCiphertextException"
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"app": "x"},
                    KeyId=other)
    assert error_code(e.value) == "IncorrectKeyException"
    kms.encrypt(KeyId=key_id, Plaintext=b"a" * 4096)
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key_id, Plaintext=b"a" * 4097)
    assert error_code(e.value) == "ValidationException"
    flipped = bytearray(blob["CiphertextBlob"])
    flipped[-1] ^= 1
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=bytes(flipped), EncryptionContext={"app": "x"})
    assert error_code(e.value) == "InvalidCiphertextException"
    re = kms.re_encrypt(CiphertextBlob=blob["CiphertextBlob"], SourceEncryptionContext={"app": "x"},
                        DestinationKeyId=other)
    assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"])["Plaintext"] == b"secret"


def test_data_keys_and_rotation(kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext={"k": "v"})
    assert len(dk["Plaintext"]) == 32
    kms.rotate_key_on_demand(KeyId=key_id)
    dk2 = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=64)
    assert "Plaintext" not in dk2
    # ciphertext made before the rotation still decrypts
    old = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"k": "v"})
    assert old["Plaintext"] == dk["Plaintext"]
    assert len(kms.decrypt(CiphertextBlob=dk2["CiphertextBlob"])["Plaintext"]) == 64


def test_errors_are_json(server, kms):
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId="11111111-2222-3333-4444-555555555555")
    assert error_code(e.value) == "NotFoundException"
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/aws/mine", TargetKeyId="x")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    bad = make_client(server, "kms")
    bad._request_signer._credentials.secret_key = "wrong"  # noqa: SLF001
    with pytest.raises(ClientError) as e:
        bad.list_keys()
    assert error_code(e.value) == "InvalidSignatureException"
    unknown = make_client(server, "kms")
    unknown._request_signer._credentials.access_key = "AKIANOTAKEY000000000"  # noqa: SLF001
    with pytest.raises(ClientError) as e:
        unknown.list_keys()
    assert error_code(e.value) == "UnrecognizedClientException"


def test_aws_cli_kms(server, tmp_path):
    def aws(*args):
        return aws_json(server, "kms", *args)

    key = aws("create-key", "--description", "cli")["KeyMetadata"]
    alias = f"alias/cli-{uuid.uuid4().hex[:8]}"
    aws("create-alias", "--alias-name", alias, "--target-key-id", key["KeyId"])
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"cli secret")
    blob = aws("encrypt", "--key-id", alias, "--plaintext", f"fileb://{secret}",
               "--encryption-context", "purpose=test")["CiphertextBlob"]
    ct = tmp_path / "ct.bin"
    ct.write_bytes(base64.b64decode(blob))
    out = aws("decrypt", "--ciphertext-blob", f"fileb://{ct}", "--encryption-context",
              "purpose=test")
    assert base64.b64decode(out["Plaintext"]) == b"cli secret"
    assert alias in [a["AliasName"] for a in aws("list-aliases")["Aliases"]]


def test_dry_run(kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key_id, Plaintext=b"x", DryRun=True)
    assert error_code(e.value) == "DryRunOperationException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError) as e:           # a dry run still performs every check
        kms.encrypt(KeyId=key_id, Plaintext=b"x", DryRun=True)
    assert error_code(e.value) == "DisabledException"


def test_request_id_header(kms):
    out = kms.list_keys()
    assert out["ResponseMetadata"]["RequestId"]


def test_get_key_last_usage(kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    first = kms.get_key_last_usage(KeyId=key_id)
    assert "KeyLastUsage" not in first and first["KeyCreationDate"]
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    blob = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["CiphertextBlob"]
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"wrong": "context"})
    usage = kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]
    assert usage["Operation"] == "GenerateDataKey"        # the failed Decrypt does not count
    assert usage["CloudTrailEventId"] and usage["KmsRequestId"]
