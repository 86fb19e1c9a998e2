"""Malformed KMS parameters the fuzz tests (tests/integration/test_kms_fuzz_ops.py) found
answered with a 500: JSON strings holding lone surrogates (``"\\ud800"`` is valid JSON, and
boto3 sends a Python string with one as that escape) reached SQLite, whose UTF-8 encoder
raised. Each now gets the 400 error AWS gives a malformed parameter value, through boto3
against a real ``coffer serve``.
"""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.wire.clients import error_code
from tests.wire.conftest import make_client

BAD = "bad\ud800value"


@pytest.fixture(scope="module")
def kms(server):
    return make_client(server, "kms")


def _code(call, **kw) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call(**kw)
    return error_code(exc), exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_lone_surrogates_are_validation_errors_not_500s(kms):
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    cases = [
        (kms.update_key_description, {"KeyId": key, "Description": BAD}, "ValidationException"),
        (kms.create_key, {"Description": BAD}, "ValidationException"),
        (kms.tag_resource, {"KeyId": key, "Tags": [{"TagKey": "k", "TagValue": BAD}]},
         "TagException"),
        (kms.put_key_policy, {"KeyId": key, "PolicyName": "default", "Policy": '{"Id": "'
                              + BAD + '"}'}, "MalformedPolicyDocumentException"),
        (kms.revoke_grant, {"KeyId": key, "GrantId": BAD}, "InvalidGrantIdException"),
        (kms.list_grants, {"KeyId": key, "GranteePrincipal": BAD}, "ValidationException"),
        (kms.connect_custom_key_store, {"CustomKeyStoreId": BAD}, "ValidationException"),
        (kms.generate_random, {"NumberOfBytes": 8, "CustomKeyStoreId": BAD},
         "ValidationException"),
    ]
    for call, kw, expected in cases:
        assert _code(call, **kw) == (expected, 400), call.__name__
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["Description"] == ""
