"""The IAM and STS Query faces against a real ``coffer serve``: boto3 and the aws CLI."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.wire.clients import error_code
from tests.wire.conftest import make_client, new_account




@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, "iam")


@pytest.fixture(scope="module")
def sts(server):
    return make_client(server, "sts")


def _name(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _wait_for_key(server, key, secret):
    """Newly created keys work at once (no eventual consistency here)."""
    return make_client(server, "sts", key, secret)


def test_root_caller_identity(sts):
    ident = sts.get_caller_identity()
    assert ident["Arn"] == f"arn:aws:iam::{ident['Account']}:root"
    assert ident["UserId"] == ident["Account"] and len(ident["Account"]) == 12


def test_user_lifecycle_and_new_key_works(server, iam, sts):
    account = sts.get_caller_identity()["Account"]
    name = _name()
    user = iam.create_user(UserName=name, Path="/team/")["User"]
    assert user["Arn"] == f"arn:aws:iam::{account}:user/team/{name}"
    assert user["UserId"].startswith("AIDA") and user["Path"] == "/team/"
    assert iam.get_user(UserName=name)["User"]["UserId"] == user["UserId"]
    assert name in [u["UserName"] for u in iam.list_users()["Users"]]
    with pytest.raises(ClientError) as exc:
        iam.create_user(UserName=name)
    assert error_code(exc) == "EntityAlreadyExists"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    key = iam.create_access_key(UserName=name)["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["AccessKeyId"]) == 20
    assert key["Status"] == "Active" and len(key["SecretAccessKey"]) == 40
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    assert "SecretAccessKey" not in listed[0]

    user_sts = _wait_for_key(server, key["AccessKeyId"], key["SecretAccessKey"])
    ident = user_sts.get_caller_identity()
    assert ident == {**ident, "Account": account, "Arn": user["Arn"], "UserId": user["UserId"]}

    # Inactive keys are refused as unknown ones are.
    iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    with pytest.raises(ClientError) as exc:
        user_sts.get_caller_identity()
    assert error_code(exc) == "InvalidClientTokenId"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Active")
    assert user_sts.get_caller_identity()["Arn"] == user["Arn"]

    # A user with keys cannot be deleted.
    with pytest.raises(ClientError) as exc:
        iam.delete_user(UserName=name)
    assert error_code(exc) == "DeleteConflict"
    iam.create_access_key(UserName=name)
    with pytest.raises(ClientError) as exc:
        iam.create_access_key(UserName=name)
    assert error_code(exc) == "LimitExceeded"
    for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=name, AccessKeyId=k["AccessKeyId"])
    with pytest.raises(ClientError) as exc:
        user_sts.get_caller_identity()
    assert error_code(exc) == "InvalidClientTokenId"
    iam.delete_user(UserName=name)
    with pytest.raises(ClientError) as exc:
        iam.get_user(UserName=name)
    assert error_code(exc) == "NoSuchEntity"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_wrong_secret_is_signature_mismatch(server, iam):
    name = _name()
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    bad = make_client(server, "sts", key["AccessKeyId"], "x" * 40)
    with pytest.raises(ClientError) as exc:
        bad.get_caller_identity()
    assert error_code(exc) == "SignatureDoesNotMatch"
    unknown = make_client(server, "iam", "AKIAUNKNOWNUNKNOWN00", "x" * 40)
    with pytest.raises(ClientError) as exc:
        unknown.list_users()
    assert error_code(exc) == "InvalidClientTokenId"


def test_inline_policies(iam):
    name = _name()
    iam.create_user(UserName=name)
    doc = _policy({"Sid": "S3", "Effect": "Allow", "Action": "s3:GetObject",
                   "Resource": "arn:aws:s3:::b/${aws:username}/*"})
    iam.put_user_policy(UserName=name, PolicyName="read", PolicyDocument=doc)
    got = iam.get_user_policy(UserName=name, PolicyName="read")
    assert got["PolicyDocument"] == json.loads(doc)
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["read"]
    with pytest.raises(ClientError) as exc:
        iam.put_user_policy(UserName=name, PolicyName="bad", PolicyDocument="{not json")
    assert error_code(exc) == "MalformedPolicyDocument"
    with pytest.raises(ClientError) as exc:
        iam.put_user_policy(UserName=name, PolicyName="bad", PolicyDocument=_policy(
            {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}))
    assert error_code(exc) == "MalformedPolicyDocument"
    assert "principal" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        iam.delete_user(UserName=name)
    assert error_code(exc) == "DeleteConflict"
    iam.delete_user_policy(UserName=name, PolicyName="read")
    with pytest.raises(ClientError) as exc:
        iam.get_user_policy(UserName=name, PolicyName="read")
    assert error_code(exc) == "NoSuchEntity"
    iam.delete_user(UserName=name)


def test_managed_policies(iam, sts):
    account = sts.get_caller_identity()["Account"]
    name, pname = _name(), _name("p")
    iam.create_user(UserName=name)
    pol = iam.create_policy(PolicyName=pname, PolicyDocument=_policy(
        {"Effect": "Allow", "Action": "iam:Get*", "Resource": "*"}))["Policy"]
    assert pol["Arn"] == f"arn:aws:iam::{account}:policy/{pname}"
    assert pol["DefaultVersionId"] == "v1"
    with pytest.raises(ClientError) as exc:
        iam.create_policy(PolicyName=pname, PolicyDocument=_policy(
            {"Effect": "Allow", "Action": "iam:Get*", "Resource": "*"}))
    assert error_code(exc) == "EntityAlreadyExists"
    iam.attach_user_policy(UserName=name, PolicyArn=pol["Arn"])
    attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
    assert attached == [{"PolicyName": pname, "PolicyArn": pol["Arn"]}]
    with pytest.raises(ClientError) as exc:
        iam.attach_user_policy(UserName=name, PolicyArn=f"arn:aws:iam::{account}:policy/nope")
    assert error_code(exc) == "NoSuchEntity"
    with pytest.raises(ClientError) as exc:
        iam.delete_user(UserName=name)
    assert error_code(exc) == "DeleteConflict"
    iam.detach_user_policy(UserName=name, PolicyArn=pol["Arn"])
    assert iam.list_attached_user_policies(UserName=name)["AttachedPolicies"] == []
    iam.delete_user(UserName=name)


def test_user_needs_iam_permissions(server, iam):
    name = _name()
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    user_iam = make_client(server, "iam", key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ClientError) as exc:
        user_iam.create_user(UserName=_name())
    assert error_code(exc) == "AccessDenied"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "iam:CreateUser" in exc.value.response["Error"]["Message"]
    iam.put_user_policy(UserName=name, PolicyName="admin-users", PolicyDocument=_policy(
        {"Effect": "Allow", "Action": ["iam:CreateUser", "iam:GetUser"], "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:CreateUser",
         "Resource": "arn:aws:iam::*:user/blocked-*"}))
    child = _name("child")
    assert user_iam.create_user(UserName=child)["User"]["UserName"] == child
    assert user_iam.get_user()["User"]["UserName"] == name      # no UserName: the caller
    with pytest.raises(ClientError) as exc:
        user_iam.create_user(UserName="blocked-" + uuid.uuid4().hex[:6])
    assert error_code(exc) == "AccessDenied"
    assert "explicit deny" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        user_iam.list_users()
    assert error_code(exc) == "AccessDenied"
    # An AWS-managed policy by ARN, as on AWS.
    iam.attach_user_policy(UserName=name,
                           PolicyArn="arn:aws:iam::aws:policy/IAMFullAccess")
    assert child in [u["UserName"] for u in user_iam.list_users()["Users"]]


def test_unknown_action(server):
    iam = make_client(server, "iam")
    with pytest.raises(ClientError) as exc:
        iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    assert error_code(exc) == "InvalidAction"


@pytest.mark.skipif(shutil.which("aws") is None and not (
    __import__("pathlib").Path(sys.executable).parent / "aws").exists(), reason="no aws CLI")
def test_aws_cli(server):
    from pathlib import Path
    aws = str(Path(sys.executable).parent / "aws") if (
        Path(sys.executable).parent / "aws").exists() else "aws"
    env = server.client_env()
    name = _name("cli")

    def run(*args):
        out = subprocess.run([aws, "--endpoint-url", server.endpoint, "--output", "json",
                              *args], env=env, capture_output=True, text=True, timeout=60)
        return out

    out = run("iam", "create-user", "--user-name", name)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["User"]["UserName"] == name
    out = run("iam", "create-access-key", "--user-name", name)
    assert out.returncode == 0, out.stderr
    key = json.loads(out.stdout)["AccessKey"]
    env.update(AWS_ACCESS_KEY_ID=key["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    out = run("sts", "get-caller-identity")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"].endswith(f":user/{name}")
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key)
    out = run("iam", "delete-user", "--user-name", name)
    assert out.returncode != 0 and "DeleteConflict" in out.stderr


def test_second_account_via_cli(server):
    account, key, secret = new_account(server)
    sts2 = make_client(server, "sts", key, secret)
    ident = sts2.get_caller_identity()
    assert ident["Account"] == account and ident["Arn"] == f"arn:aws:iam::{account}:root"
    # Accounts are separate namespaces.
    iam2 = make_client(server, "iam", key, secret)
    name = _name()
    iam2.create_user(UserName=name)
    root_iam = make_client(server, "iam")
    assert name not in [u["UserName"] for u in root_iam.list_users()["Users"]]
    assert iam2.get_user(UserName=name)["User"]["Arn"] == f"arn:aws:iam::{account}:user/{name}"


def test_data_dir_alone_yields_no_secret(server, iam):
    user = _name()
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    secret = key["SecretAccessKey"].encode()
    sealing = server.data_dir.resolve().with_name(server.data_dir.name + ".iam.key")
    assert sealing.exists()
    seal_key = sealing.read_bytes()
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret not in data and seal_key not in data, path
    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName=user)
