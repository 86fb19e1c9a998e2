"""Issue 11 ("Trust"), the identity and policy-language findings, against a real coffer serve.

- 2: a user name in another case must be authorized against the stored user's ARN;
- 9: a Deny whose NotPrincipal names an account root exempts that root only, not its users;
- 10: GetPolicy / GetPolicyVersion never return another account's policy;
- 12: policies AWS rejects (wildcard principal ARNs, Allow + NotPrincipal, unknown users) are
  rejected by bucket, key and IAM policy calls alike;
- 16: deeply nested policy JSON is a malformed policy in each face's protocol, never a 500;
- 20: IAM names are ASCII ``[\\w+=,.@-]`` without a trailing newline.
"""
from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.wire.clients import error_code
from tests.wire.conftest import _empty_and_delete, make_client, new_account


def _name(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture(scope="module")
def iam(server):
    return make_client(server, "iam")


@pytest.fixture(scope="module")
def account(server) -> str:
    return make_client(server, "sts").get_caller_identity()["Account"]


def _user(server, iam, statements=(), name=None):
    name = name or _name()
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=_doc(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, arn, key["AccessKeyId"], key["SecretAccessKey"]


def _status(exc) -> int:
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


# -- finding 2: the stored user's canonical ARN ------------------------------------------

def test_other_case_user_name_cannot_bypass_deny(server, iam, account):
    victim = _name("alice")
    _user(server, iam, name=victim)
    victim_key = iam.list_access_keys(UserName=victim)["AccessKeyMetadata"][0]["AccessKeyId"]
    _, _, key, secret = _user(server, iam, [
        {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:*",
         "Resource": f"arn:aws:iam::{account}:user/{victim}"}])
    admin = make_client(server, "iam", key, secret)
    for spelled in (victim, victim.upper(), victim.capitalize()):
        calls = [
            lambda: admin.create_access_key(UserName=spelled),
            lambda: admin.put_user_policy(UserName=spelled, PolicyName="own",
                                          PolicyDocument=_doc({"Effect": "Allow",
                                                               "Action": "*",
                                                               "Resource": "*"})),
            lambda: admin.delete_access_key(UserName=spelled, AccessKeyId=victim_key),
            lambda: admin.list_access_keys(UserName=spelled),
            lambda: admin.get_user(UserName=spelled),
            lambda: admin.attach_user_policy(
                UserName=spelled, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess"),
        ]
        for call in calls:
            with pytest.raises(ClientError) as exc:
                call()
            assert error_code(exc) == "AccessDenied", spelled
    # Nothing happened to the victim.
    assert len(iam.list_access_keys(UserName=victim)["AccessKeyMetadata"]) == 1
    assert iam.list_user_policies(UserName=victim)["PolicyNames"] == []
    # A user in another case is the same user: the ARN keeps the stored case.
    other = _name("bob")
    iam.create_user(UserName=other)
    got = admin.get_user(UserName=other.upper())["User"]
    assert got["UserName"] == other and got["Arn"].endswith(f":user/{other}")
    with pytest.raises(ClientError) as exc:
        admin.create_user(UserName=other.upper())
    assert error_code(exc) == "EntityAlreadyExists"


def test_unknown_user_is_no_such_entity_only_to_callers_allowed_to_know(server, iam,
                                                                        account):
    ghost = _name("ghost")
    _, _, key, secret = _user(server, iam, [
        {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:*",
         "Resource": f"arn:aws:iam::{account}:user/ghost-*"}])
    admin = make_client(server, "iam", key, secret)
    with pytest.raises(ClientError) as exc:
        admin.get_user(UserName=ghost)
    assert error_code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        admin.get_user(UserName=_name("nobody"))
    assert error_code(exc) == "NoSuchEntity"


# -- finding 9: NotPrincipal naming an account root -------------------------------------

def test_notprincipal_account_root_does_not_exempt_its_users(server, iam, account):
    s3 = make_client(server)
    bucket = f"np-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        name, arn, key, secret = _user(server, iam, [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}])
        s3.put_bucket_policy(Bucket=bucket, Policy=_doc({
            "Sid": "OnlyRoot", "Effect": "Deny",
            "NotPrincipal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}))
        user_s3 = make_client(server, "s3", key, secret)
        with pytest.raises(ClientError) as exc:
            user_s3.get_object(Bucket=bucket, Key="k")
        assert error_code(exc) == "AccessDenied"
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
        # Listing the user itself does exempt it [IAM UG, "NotPrincipal"].
        s3.put_bucket_policy(Bucket=bucket, Policy=_doc({
            "Effect": "Deny", "NotPrincipal": {"AWS": [f"arn:aws:iam::{account}:root", arn]},
            "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}))
        assert user_s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    finally:
        s3.delete_bucket_policy(Bucket=bucket)
        _empty_and_delete(s3, bucket)


def test_notprincipal_account_root_in_key_policy(server, iam, account):
    kms = make_client(server, "kms")
    name, arn, key, secret = _user(server, iam, [
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}])
    root = f"arn:aws:iam::{account}:root"
    key_id = kms.create_key(Policy=_doc(
        {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": root}, "Action": "kms:Encrypt",
         "Resource": "*"}))["KeyMetadata"]["KeyId"]
    user_kms = make_client(server, "kms", key, secret)
    with pytest.raises(ClientError) as exc:
        user_kms.encrypt(KeyId=key_id, Plaintext=b"p")
    assert error_code(exc) == "AccessDeniedException"
    assert "explicit deny" in exc.value.response["Error"]["Message"]
    kms.encrypt(KeyId=key_id, Plaintext=b"p")


# -- finding 10: another account's managed policies --------------------------------------

def test_get_policy_of_another_account_is_refused(server, iam):
    _, key, secret = new_account(server)
    iam_b = make_client(server, "iam", key, secret)
    secret_doc = _doc({"Sid": "SecretSauce", "Effect": "Allow", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::b-private/*"})
    arn = iam_b.create_policy(PolicyName=_name("p"), PolicyDocument=secret_doc)["Policy"]["Arn"]
    assert iam_b.get_policy(PolicyArn=arn)["Policy"]["Arn"] == arn
    for call in (lambda: iam.get_policy(PolicyArn=arn),
                 lambda: iam.get_policy_version(PolicyArn=arn, VersionId="v1"),
                 lambda: iam.delete_policy(PolicyArn=arn)):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == "AccessDenied"
        assert "SecretSauce" not in json.dumps(exc.value.response, default=str)
    # AWS-managed policies stay readable by every account.
    aws = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    assert aws["Policy"]["PolicyName"] == "AdministratorAccess"
    assert iam_b.get_policy(PolicyArn=arn)["Policy"]["Arn"] == arn


# -- finding 12: policies AWS rejects -----------------------------------------------------

def _bad_resource_policies(account: str, resource: str) -> dict[str, dict]:
    ghost = f"arn:aws:iam::{account}:user/{_name('ghost')}"
    return {
        "deny-wildcard-user": {"Effect": "Deny",
                               "Principal": {"AWS": f"arn:aws:iam::{account}:user/*"},
                               "Action": "*", "Resource": resource},
        "deny-wildcard-partial": {"Effect": "Deny",
                                  "Principal": {"AWS": f"arn:aws:iam::{account}:user/a?c"},
                                  "Action": "*", "Resource": resource},
        "allow-notprincipal": {"Effect": "Allow",
                               "NotPrincipal": {"AWS": f"arn:aws:iam::{account}:root"},
                               "Action": "*", "Resource": resource},
        "unknown-user": {"Effect": "Allow", "Principal": {"AWS": ghost}, "Action": "*",
                         "Resource": resource},
        "unknown-user-notprincipal": {"Effect": "Deny", "NotPrincipal": {"AWS": ghost},
                                      "Action": "*", "Resource": resource},
        "user-in-other-case": None,     # filled in by the test (needs a real user)
        "group-principal": {"Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{account}:group/admins"},
                            "Action": "*", "Resource": resource},
    }


def test_bucket_policy_rejects_what_aws_rejects(server, iam, account):
    s3 = make_client(server)
    bucket = f"bp-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    real = _name("carol")
    real_arn = iam.create_user(UserName=real)["User"]["Arn"]
    try:
        cases = _bad_resource_policies(account, f"arn:aws:s3:::{bucket}/*")
        cases["user-in-other-case"] = {"Effect": "Deny",
                                       "Principal": {
                                           "AWS": f"arn:aws:iam::{account}:user/{real.upper()}"},
                                       "Action": "*", "Resource": f"arn:aws:s3:::{bucket}/*"}
        for label, st in cases.items():
            with pytest.raises(ClientError) as exc:
                s3.put_bucket_policy(Bucket=bucket, Policy=_doc(st))
            assert error_code(exc) == "MalformedPolicy", label
            assert _status(exc) == 400
            assert exc.value.response["Error"]["Message"] == "Invalid principal in policy", label
        with pytest.raises(ClientError) as exc:
            s3.get_bucket_policy(Bucket=bucket)
        assert error_code(exc) == "NoSuchBucketPolicy"
        # An existing user is accepted.
        s3.put_bucket_policy(Bucket=bucket, Policy=_doc({
            "Effect": "Allow", "Principal": {"AWS": real_arn}, "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*"}))
        s3.delete_bucket_policy(Bucket=bucket)
    finally:
        _empty_and_delete(s3, bucket)


def test_key_policy_rejects_what_aws_rejects(server, iam, account):
    kms = make_client(server, "kms")
    root_st = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
               "Action": "kms:*", "Resource": "*"}
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for label, st in _bad_resource_policies(account, "*").items():
        if st is None:
            continue
        with pytest.raises(ClientError) as exc:
            kms.create_key(Policy=_doc(root_st, st))
        assert error_code(exc) == "MalformedPolicyDocumentException", label
        with pytest.raises(ClientError) as exc:
            kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=_doc(root_st, st))
        assert error_code(exc) == "MalformedPolicyDocumentException", label
        assert exc.value.response["Error"]["Message"] == (
            "Policy contains a statement with one or more invalid principals."), label
    # The lockout safety check still runs.
    with pytest.raises(ClientError) as exc:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=_doc({
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "kms:Encrypt", "Resource": "*"}))
    assert error_code(exc) == "MalformedPolicyDocumentException"
    assert "will not allow you to update the key policy" in exc.value.response["Error"][
        "Message"]


def test_identity_policy_rejects_notprincipal(iam):
    name = _name()
    iam.create_user(UserName=name)
    for st in ({"Effect": "Deny", "NotPrincipal": {"AWS": "*"}, "Action": "*",
                "Resource": "*"},
               {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/*"},
                "Action": "*", "Resource": "*"}):
        with pytest.raises(ClientError) as exc:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=_doc(st))
        assert error_code(exc) == "MalformedPolicyDocument"
        with pytest.raises(ClientError) as exc:
            iam.create_policy(PolicyName=_name("p"), PolicyDocument=_doc(st))
        assert error_code(exc) == "MalformedPolicyDocument"


# -- finding 16: deeply nested JSON -------------------------------------------------------

def _nested(depth: int) -> str:
    return ('{"Version":"2012-10-17","Statement":' + "[" * depth + "]" * depth + "}")


def test_deeply_nested_policies_are_malformed_not_500(server, iam):
    s3 = make_client(server)
    bucket = f"dn-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    try:
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_policy(Bucket=bucket, Policy=_nested(9000))
        assert error_code(exc) == "MalformedPolicy" and _status(exc) == 400
    finally:
        _empty_and_delete(s3, bucket)
    kms = make_client(server, "kms")
    with pytest.raises(ClientError) as exc:
        kms.create_key(Policy=_nested(15000))
    assert error_code(exc) == "MalformedPolicyDocumentException" and _status(exc) == 400
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as exc:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=_nested(15000))
    assert error_code(exc) == "MalformedPolicyDocumentException"
    name = _name()
    iam.create_user(UserName=name)
    for call in (lambda: iam.put_user_policy(UserName=name, PolicyName="p",
                                             PolicyDocument=_nested(3000)),
                 lambda: iam.create_policy(PolicyName=_name("p"),
                                           PolicyDocument=_nested(3000))):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == "MalformedPolicyDocument" and _status(exc) == 400
    # A condition nested deep inside an otherwise valid statement, too.
    deep = ('{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*",'
            '"Resource":"*","Condition":{"StringEquals":{"aws:x":' + "[" * 3000 + "]" * 3000
            + "}}}}")
    with pytest.raises(ClientError) as exc:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=deep)
    assert error_code(exc) == "MalformedPolicyDocument"


# -- finding 20: IAM names ----------------------------------------------------------------

@pytest.mark.parametrize("bad", ["\u00e5lice", "al\u0130ce", "\u0430lice", "alice\n",
                                 "alice\u0662", "\uff41lice", "al ice"])
def test_iam_user_names_are_ascii(iam, bad):
    with pytest.raises(ClientError) as exc:
        iam.create_user(UserName=bad)
    assert error_code(exc) == "ValidationError"
    assert _status(exc) == 400


def test_iam_policy_names_and_paths_are_ascii(iam):
    name = _name()
    iam.create_user(UserName=name)
    doc = _doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    for bad in ("p\u00e9", "p\n", "\u0660"):
        with pytest.raises(ClientError) as exc:
            iam.put_user_policy(UserName=name, PolicyName=bad, PolicyDocument=doc)
        assert error_code(exc) == "ValidationError", bad
        with pytest.raises(ClientError) as exc:
            iam.create_policy(PolicyName=bad, PolicyDocument=doc)
        assert error_code(exc) == "ValidationError", bad
    with pytest.raises(ClientError) as exc:
        iam.create_user(UserName=_name(), Path="/team/\n")
    assert error_code(exc) == "ValidationError"
    ok = _name("ok_+=,.@-")
    assert iam.create_user(UserName=ok)["User"]["UserName"] == ok
