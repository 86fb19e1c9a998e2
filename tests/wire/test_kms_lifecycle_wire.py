"""Lifecycle operations over the KMS JSON API: boto3's kms client and `aws kms` against a real
``coffer serve`` (rotation, tags, key policies, imported key material, their error paths)."""
from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from tests.crypto_outside import wrap_import_material
from tests.wire.clients import AWS, aws_json, error_code

pytestmark = pytest.mark.wire



def _fails(code: str, fn, **kw) -> None:
    with pytest.raises(ClientError) as e:
        fn(**kw)
    assert error_code(e.value) == code, e.value.response["Error"]




def test_rotation(kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    st = kms.get_key_rotation_status(KeyId=key_id)
    assert st["KeyRotationEnabled"] is False and st["KeyId"].endswith(key_id)
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    st = kms.get_key_rotation_status(KeyId=key_id)
    assert st["KeyRotationEnabled"] and st["RotationPeriodInDays"] == 180
    days = (st["NextRotationDate"] - dt.datetime.now(dt.timezone.utc)).days
    assert 178 <= days <= 180
    kms.enable_key_rotation(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["RotationPeriodInDays"] == 365
    _fails("ValidationException", kms.enable_key_rotation, KeyId=key_id,
           RotationPeriodInDays=2561)
    kms.rotate_key_on_demand(KeyId=key_id)
    rot = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["RotationType"] for r in rot] == ["ON_DEMAND"]
    kms.disable_key_rotation(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    kms.disable_key(KeyId=key_id)
    _fails("DisabledException", kms.enable_key_rotation, KeyId=key_id)
    kms.enable_key(KeyId=key_id)
    kms.enable_key_rotation(KeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    _fails("KMSInvalidStateException", kms.disable_key_rotation, KeyId=key_id)
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    ext = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    for op in (kms.enable_key_rotation, kms.disable_key_rotation, kms.get_key_rotation_status,
               kms.rotate_key_on_demand):
        _fails("UnsupportedOperationException", op, KeyId=ext)
    _fails("NotFoundException", kms.get_key_rotation_status,
           KeyId="00000000-0000-4000-8000-000000000000")


def test_tags(kms):
    key_id = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "storage"}])["KeyMetadata"][
        "KeyId"]
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [
        {"TagKey": "team", "TagValue": "storage"}]
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "test"},
                                         {"TagKey": "team", "TagValue": "s3"}])
    kms.untag_resource(KeyId=key_id, TagKeys=["env"])
    out = kms.list_resource_tags(KeyId=key_id, Limit=1)
    assert out["Tags"] == [{"TagKey": "team", "TagValue": "s3"}] and not out["Truncated"]
    _fails("TagException", kms.tag_resource, KeyId=key_id,
           Tags=[{"TagKey": "aws:x", "TagValue": "v"}])
    _fails("TagException", kms.untag_resource, KeyId=key_id, TagKeys=["aws:x"])
    _fails("TagException", kms.create_key, Tags=[{"TagKey": "aws:x", "TagValue": "v"}])
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": f"k{i}", "TagValue": "v"}
                                         for i in range(49)])
    _fails("LimitExceededException", kms.tag_resource, KeyId=key_id,
           Tags=[{"TagKey": "fifty-one", "TagValue": "v"}])
    page = kms.list_resource_tags(KeyId=key_id, Limit=10)
    assert page["Truncated"] and len(page["Tags"]) == 10
    rest = kms.list_resource_tags(KeyId=key_id, Marker=page["NextMarker"])
    assert len(rest["Tags"]) == 40
    _fails("InvalidMarkerException", kms.list_resource_tags, KeyId=key_id, Marker="zz")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    _fails("KMSInvalidStateException", kms.tag_resource, KeyId=key_id,
           Tags=[{"TagKey": "a", "TagValue": "b"}])


def test_key_policies(kms, server):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    got = kms.get_key_policy(KeyId=key_id, PolicyName="default")
    doc = json.loads(got["Policy"])
    assert doc["Statement"][0]["Sid"] == "Enable IAM User Permissions"
    account = doc["Statement"][0]["Principal"]["AWS"].split(":")[4]
    assert kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]
    root = f"arn:aws:iam::{account}:root"
    ok = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": root},
         "Action": ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:Describe*",
                    "kms:UpdateKeyDescription"], "Resource": "*"}]})
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=ok)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == ok
    lockout = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:Encrypt",
         "Resource": "*"}]})
    _fails("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key_id,
           Policy=lockout)
    _fails("MalformedPolicyDocumentException", kms.create_key, Policy=lockout)
    # The bypass really locks the root out (AWS authorization): use a second key for it.
    locked = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.put_key_policy(KeyId=locked, Policy=lockout, BypassPolicyLockoutSafetyCheck=True)
    _fails("AccessDeniedException", kms.get_key_policy, KeyId=locked)
    kms.encrypt(KeyId=locked, Plaintext=b"x")
    _fails("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key_id,
           Policy="{nope")
    _fails("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=key_id,
           Policy=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}))
    _fails("NotFoundException", kms.get_key_policy, KeyId=key_id, PolicyName="other")
    big = json.dumps({"Version": "2012-10-17", "Id": "x" * 33000,
                      "Statement": json.loads(ok)["Statement"]})
    _fails("LimitExceededException", kms.put_key_policy, KeyId=key_id, Policy=big)
    kms.update_key_description(KeyId=key_id, Description="described")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "described"


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256"])
def test_import_roundtrip(kms, algorithm):
    md = kms.create_key(Origin="EXTERNAL", Description="byok")["KeyMetadata"]
    key_id = md["KeyId"]
    assert md["KeyState"] == "PendingImport" and md["Origin"] == "EXTERNAL"
    _fails("KMSInvalidStateException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm,
                                           WrappingKeySpec="RSA_2048")
    left = params["ParametersValidTo"] - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(hours=23) < left <= dt.timedelta(hours=24)
    material = os.urandom(32)
    valid_to = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                            EncryptedKeyMaterial=wrap_import_material(params, material, algorithm),
                            ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs((md["ValidTo"] - valid_to).total_seconds()) < 2
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"byok")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"byok"
    kms.delete_imported_key_material(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    _fails("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob)
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm,
                                           WrappingKeySpec="RSA_2048")
    _fails("IncorrectKeyMaterialException", kms.import_key_material, KeyId=key_id,
           ImportToken=params["ImportToken"],
           EncryptedKeyMaterial=wrap_import_material(params, os.urandom(32), algorithm),
           ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                            EncryptedKeyMaterial=wrap_import_material(params, material, algorithm),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"byok"


def test_import_errors(kms):
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    other = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    native = kms.create_key()["KeyMetadata"]["KeyId"]
    _fails("UnsupportedOperationException", kms.get_parameters_for_import, KeyId=native,
           WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    _fails("UnsupportedOperationException", kms.delete_imported_key_material, KeyId=native)
    _fails("UnsupportedOperationException", kms.get_parameters_for_import, KeyId=key_id,
           WrappingAlgorithm="RSAES_PKCS1_V1_5", WrappingKeySpec="RSA_2048")
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1",
                                           WrappingKeySpec="RSA_2048")
    good = wrap_import_material(params, os.urandom(32), "RSAES_OAEP_SHA_1")
    _fails("InvalidImportTokenException", kms.import_key_material, KeyId=other,
           ImportToken=params["ImportToken"], EncryptedKeyMaterial=good,
           ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    _fails("InvalidCiphertextException", kms.import_key_material, KeyId=key_id,
           ImportToken=params["ImportToken"], EncryptedKeyMaterial=b"\x01" * 256,
           ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    _fails("ValidationException", kms.import_key_material, KeyId=key_id,
           ImportToken=params["ImportToken"], EncryptedKeyMaterial=good,
           ExpirationModel="KEY_MATERIAL_EXPIRES")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    _fails("KMSInvalidStateException", kms.import_key_material, KeyId=key_id,
           ImportToken=params["ImportToken"], EncryptedKeyMaterial=good,
           ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")


def test_aws_cli_lifecycle(server, tmp_path):
    def aws(*args):
        return aws_json(server, "kms", *args)

    key_id = aws("create-key", "--tags", "TagKey=app,TagValue=cli")["KeyMetadata"]["KeyId"]
    aws("enable-key-rotation", "--key-id", key_id, "--rotation-period-in-days", "90")
    st = aws("get-key-rotation-status", "--key-id", key_id)
    assert st["KeyRotationEnabled"] is True and st["RotationPeriodInDays"] == 90
    aws("tag-resource", "--key-id", key_id, "--tags", "TagKey=env,TagValue=dev")
    tags = aws("list-resource-tags", "--key-id", key_id)["Tags"]
    assert {"TagKey": "env", "TagValue": "dev"} in tags
    pol = aws("get-key-policy", "--key-id", key_id, "--policy-name", "default",
              "--output", "json")["Policy"]
    aws("put-key-policy", "--key-id", key_id, "--policy-name", "default", "--policy", pol)
    assert aws("list-key-policies", "--key-id", key_id)["PolicyNames"] == ["default"]
    # Import with the CLI, as the AWS guide does (base64 in, fileb:// for the blobs).
    ext = aws("create-key", "--origin", "EXTERNAL")["KeyMetadata"]["KeyId"]
    params = aws("get-parameters-for-import", "--key-id", ext, "--wrapping-algorithm",
                 "RSAES_OAEP_SHA_256", "--wrapping-key-spec", "RSA_2048")
    params = {"PublicKey": base64.b64decode(params["PublicKey"]),
              "ImportToken": base64.b64decode(params["ImportToken"])}
    (tmp_path / "token.bin").write_bytes(params["ImportToken"])
    (tmp_path / "material.bin").write_bytes(wrap_import_material(params, os.urandom(32),
                                                  "RSAES_OAEP_SHA_256"))
    aws("import-key-material", "--key-id", ext, "--import-token",
        f"fileb://{tmp_path / 'token.bin'}", "--encrypted-key-material",
        f"fileb://{tmp_path / 'material.bin'}", "--expiration-model",
        "KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert aws("describe-key", "--key-id", ext)["KeyMetadata"]["KeyState"] == "Enabled"
    aws("delete-imported-key-material", "--key-id", ext)
    assert aws("describe-key", "--key-id", ext)["KeyMetadata"]["KeyState"] == "PendingImport"
    proc = subprocess.run([AWS, "--endpoint-url", server.endpoint, "kms",
                           "enable-key-rotation", "--key-id", ext], env=server.client_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "UnsupportedOperationException" in proc.stderr
