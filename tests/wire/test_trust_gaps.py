"""Issue 11 ("Trust"), the gaps the first round left, against a real coffer serve.

- IAM/STS state changes are on the record before they commit: an intent record, then the
  outcome naming it, even with a User-Agent that is not UTF-8;
- IAM AccessDenied names the user as the caller typed it, never the stored name or path;
- a user deleted and re-created under the same name inherits nothing from policies and grants
  that named the old one [IAM UG, "AWS JSON policy elements: Principal": "If you delete the
  user... and then recreate... the new user's unique ID is different... the policy doesn't
  apply to the new user"; "IAM identifiers", unique IDs];
- the S3 record carries every decision the stage made (``authorizationDecisions``), bounded.
"""
from __future__ import annotations

import json
import uuid

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from kms.audit import read_trail
from tests.wire.clients import raw_request
from tests.wire.clients import error_code
from tests.wire.conftest import make_client
from tests.wire.server import Server, start_server

pytestmark = pytest.mark.wire

BAD_UA = b"coffer-test/1.0 \xff\xfe"
BAD_UA_LOGGED = "coffer-test/1.0 \\xff\\xfe"


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Server:
    s = start_server(tmp_path_factory.mktemp("trust-gaps") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def iam(srv):
    return make_client(srv, "iam")


@pytest.fixture(scope="module")
def account(srv) -> str:
    return make_client(srv, "sts").get_caller_identity()["Account"]


def _name(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _user(srv, iam, statements=(), name=None):
    name = name or _name()
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=_doc(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, arn, key["AccessKeyId"], key["SecretAccessKey"]


def _records(srv: Server, intents: bool = False) -> list[dict]:
    return read_trail(srv.data_dir / "audit", intents=intents)


# -- IAM state changes: intent before commit ------------------------------------------------

def test_iam_create_user_with_a_non_utf8_user_agent_has_intent_then_outcome(srv, iam):
    """Before: the user was created, then its one record written after the fact."""
    name = _name("ua")
    body = f"Action=CreateUser&Version=2010-05-08&UserName={name}".encode()
    req = AWSRequest(method="POST", url=f"{srv.endpoint}/", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(srv.access_key, srv.secret_key), "iam", "us-east-1").add_auth(req)
    headers = {"Host": f"127.0.0.1:{srv.port}"}
    headers.update({k: v for k, v in req.headers.items() if k.lower() != "host"})
    status, hdrs, payload = raw_request(srv, "POST", "/", headers, body,
                                 extra=((b"User-Agent", BAD_UA),))
    assert status == 200, payload
    assert iam.get_user(UserName=name)["User"]["UserName"] == name
    recs = [r for r in _records(srv, intents=True)
            if r.get("requestID") == hdrs["x-amz-request-id"]]
    assert [(r["eventName"], r["eventType"]) for r in recs] == [
        ("CreateUser", "CofferIntent"), ("CreateUser", "AwsApiCall")], recs
    intent, outcome = recs
    assert outcome["intentEventID"] == intent["eventID"]
    assert outcome["userAgent"] == BAD_UA_LOGGED
    assert outcome["eventSource"] == "iam.amazonaws.com"
    assert "errorCode" not in outcome


def test_iam_reads_and_refusals_write_no_intent(srv, iam):
    iam.list_users()
    with pytest.raises(ClientError):
        iam.delete_user(UserName=_name("nobody"))      # NoSuchEntity: nothing committed
    intents = [r for r in _records(srv, intents=True)
               if r.get("eventType") == "CofferIntent" and r["eventName"] == "ListUsers"]
    assert intents == []


# -- IAM AccessDenied names what the caller typed ------------------------------------------

def test_access_denied_does_not_reveal_the_stored_user(srv, iam, account):
    victim = _name("alice")
    iam.create_user(UserName=victim, Path="/secret/team/")
    _, _, key, secret = _user(srv, iam, [
        {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}])
    nobody = make_client(srv, "iam", key, secret)
    typed = victim.upper()
    with pytest.raises(ClientError) as exc:
        nobody.get_user(UserName=typed)
    assert error_code(exc) == "AccessDenied"
    message = exc.value.response["Error"]["Message"]
    assert victim not in message and "/secret/team/" not in message, message
    assert f"arn:aws:iam::{account}:user/{typed}" in message
    # The same wording whether or not the user exists: nothing to learn from the message.
    ghost = _name("ALICE").upper()
    with pytest.raises(ClientError) as exc2:
        nobody.get_user(UserName=ghost)
    assert exc2.value.response["Error"]["Message"] == message.replace(typed, ghost)


# -- S3 record: every decision of the stage ---------------------------------------------------

def test_s3_record_carries_per_key_decisions_of_delete_objects(srv, iam, account):
    s3 = make_client(srv)
    bucket = f"dec-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for k in ("keep", "go"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    _, _, key, secret = _user(srv, iam, [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteObject",
         "Resource": f"arn:aws:s3:::{bucket}/keep"}])
    user_s3 = make_client(srv, "s3", key, secret)
    out = user_s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep"},
                                                                     {"Key": "go"}]})
    assert [e["Key"] for e in out.get("Errors", [])] == ["keep"]
    rid = out["ResponseMetadata"]["RequestId"]
    (rec,) = [r for r in _records(srv) if r.get("requestID") == rid]
    got = {(d["action"], d["resource"].rsplit("/", 1)[-1], d["allowed"])
           for d in rec["authorizationDecisions"]}
    assert ("s3:DeleteObject", "keep", False) in got
    assert ("s3:DeleteObject", "go", True) in got
    assert rec["authorizationDecisionCount"] == len(rec["authorizationDecisions"]) >= 2
    # NoSuchKey is decided by s3:ListBucket; the record says so.
    with pytest.raises(ClientError) as exc:
        user_s3.get_object(Bucket=bucket, Key="absent")
    assert error_code(exc) == "NoSuchKey"
    rid = exc.value.response["ResponseMetadata"]["RequestId"]
    (rec,) = [r for r in _records(srv) if r.get("requestID") == rid]
    assert [d["action"] for d in rec["authorizationDecisions"]] == ["s3:GetObject",
                                                                    "s3:ListBucket"]


# -- a re-created user inherits nothing ------------------------------------------------------

def _recreate(iam, name: str) -> tuple[str, str]:
    """Delete the user ``name`` (keys and policies first) and create it again."""
    for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=name, AccessKeyId=k["AccessKeyId"])
    for p in iam.list_user_policies(UserName=name)["PolicyNames"]:
        iam.delete_user_policy(UserName=name, PolicyName=p)
    iam.delete_user(UserName=name)
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_recreated_user_inherits_nothing_from_key_policy_bucket_policy_or_grant(srv, iam,
                                                                                account):
    """Before: the new user under the old name was allowed by all three."""
    name, arn, key, secret = _user(srv, iam)
    kms = make_client(srv, "kms")
    s3 = make_client(srv)
    root = f"arn:aws:iam::{account}:root"
    key_policy = _doc(
        {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*",
         "Resource": "*"},
        {"Sid": "bob", "Effect": "Allow", "Principal": {"AWS": arn},
         "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"})
    named = kms.create_key(Policy=key_policy)["KeyMetadata"]["KeyId"]
    granted = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_grant(KeyId=granted, GranteePrincipal=arn, Operations=["Encrypt"])
    bucket = f"re-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="doc", Body=b"for the old user", ServerSideEncryption="AES256")
    bucket_policy = _doc({"Sid": "bob", "Effect": "Allow", "Principal": {"AWS": arn},
                          "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
    s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy)

    old_kms = make_client(srv, "kms", key, secret)
    old_s3 = make_client(srv, "s3", key, secret)
    old_kms.encrypt(KeyId=named, Plaintext=b"x")
    old_kms.encrypt(KeyId=granted, Plaintext=b"x")
    assert old_s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"for the old user"

    key2, secret2 = _recreate(iam, name)
    assert iam.get_user(UserName=name)["User"]["Arn"] == arn        # the same ARN
    new_kms = make_client(srv, "kms", key2, secret2)
    new_s3 = make_client(srv, "s3", key2, secret2)
    for call in (lambda: new_kms.encrypt(KeyId=named, Plaintext=b"x"),
                 lambda: new_kms.encrypt(KeyId=granted, Plaintext=b"x"),
                 lambda: new_s3.get_object(Bucket=bucket, Key="doc")):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) in ("AccessDenied", "AccessDeniedException")
    # The documents read back as they were saved.
    assert json.loads(kms.get_key_policy(KeyId=named, PolicyName="default")["Policy"]) == \
        json.loads(key_policy)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(bucket_policy)
    # Saving the policy again names the new user: it is allowed from then on.
    kms.put_key_policy(KeyId=named, PolicyName="default", Policy=key_policy)
    new_kms.encrypt(KeyId=named, Plaintext=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy)
    assert new_s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"for the old user"


def test_recreated_user_is_not_exempted_by_a_not_principal_naming_the_old_one(srv, iam,
                                                                               account):
    """A Deny + NotPrincipal listing the old user spared it; the new one is not spared."""
    name, arn, key, secret = _user(srv, iam, [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}])
    s3 = make_client(srv)
    bucket = f"np-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_bucket_policy(Bucket=bucket, Policy=_doc(
        {"Effect": "Deny", "NotPrincipal": {"AWS": [arn, f"arn:aws:iam::{account}:root"]},
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}))
    assert make_client(srv, "s3", key, secret).get_object(Bucket=bucket, Key="k")
    key2, secret2 = _recreate(iam, name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=_doc(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    with pytest.raises(ClientError) as exc:
        make_client(srv, "s3", key2, secret2).get_object(Bucket=bucket, Key="k")
    assert error_code(exc) == "AccessDenied"
