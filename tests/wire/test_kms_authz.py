"""KMS authorization through the wire: IAM users and a second account made with boto3 ``iam``
and ``coffer account create``, each case run with a boto3 ``kms`` client signed by the user's
own access key against a real ``coffer serve`` (key policy + identity policies + grants,
condition keys and operators, explicit deny, cross-account, the audit record's
``authorizationDecision``).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.wire.clients import error_code
from tests.wire.conftest import make_client, new_account

ALLOW, DENY = "Allow", "Deny"




def _doc(statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _name(prefix="u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Env:
    server: Any
    acct: str
    xacct: str
    root_kms: Any
    root_iam: Any
    x_iam: Any
    x_kms: Any
    x_keys: tuple[str, str]


@pytest.fixture(scope="module")
def env(server) -> Env:
    _, *xkeys = new_account(server)
    xkeys = tuple(xkeys)
    root_sts = make_client(server, "sts")
    acct = root_sts.get_caller_identity()["Account"]
    x_iam = make_client(server, "iam", *xkeys)
    xacct = make_client(server, "sts", *xkeys).get_caller_identity()["Account"]
    # The key policies below name user/nobody: a principal must exist when a policy is saved
    # (AWS resolves it then; an unknown one is "Invalid principal in policy").
    try:
        make_client(server, "iam").create_user(UserName="nobody")
    except ClientError as exc:
        assert error_code(exc) == "EntityAlreadyExists"
    return Env(server, acct, xacct, make_client(server, "kms"), make_client(server, "iam"),
               x_iam, make_client(server, "kms", *xkeys), xkeys)


@dataclass
class User:
    name: str
    arn: str
    key_id: str
    secret: str
    iam: Any

    def kms(self, server, region=None):
        return make_client(server, "kms", self.key_id, self.secret, region=region)


def make_user(env: Env, statements: list | None, *, other_account=False) -> User:
    iam = env.x_iam if other_account else env.root_iam
    name = _name()
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=_doc(statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return User(name, arn, key["AccessKeyId"], key["SecretAccessKey"], iam)


def _message(exc: pytest.ExceptionInfo) -> str:
    err = exc.value.response["Error"]
    return err.get("Message") or err.get("message") or ""


# -- the table ---------------------------------------------------------------------------------

@dataclass
class Case:
    """One authorization case. Statements are built from the names in ``V`` (the user's ARN
    and name, the accounts, the key ARN) by ``fill``."""

    id: str
    identity: list | None                  # the caller's inline policy statements
    key_policy: list | None = None         # None: the default key policy
    op: str = "Encrypt"                    # Encrypt | Decrypt | GenerateDataKey | DescribeKey
                                           # | CreateGrant | ListKeys | CreateKey | ReEncrypt
    ec: dict | None = None
    caller: str = "user"                   # user | root | xuser | xroot
    expect: str = "ok"                     # "ok" or "<ErrorCode>[:<message fragment>]"
    grant: dict | None = None              # CreateGrant kwargs (root makes it for the caller)
    region: str | None = None              # the client's signing region
    grant_request: dict | None = None      # CreateGrant kwargs for op == CreateGrant
    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"


def fill(value, v: dict[str, str]):
    if isinstance(value, str):
        for k, s in v.items():
            value = value.replace("{" + k + "}", s)
        return value
    if isinstance(value, list):
        return [fill(x, v) for x in value]
    if isinstance(value, dict):
        return {fill(k, v): fill(x, v) for k, x in value.items()}
    return value


def st(effect=ALLOW, action="kms:*", resource="*", **kw) -> dict:
    out = {"Effect": effect, "Action": action, "Resource": resource}
    for k, val in kw.items():
        out[k] = val
    return out


def kst(principal, effect=ALLOW, action="kms:*", **kw) -> dict:
    return {"Effect": effect, "Principal": {"AWS": principal} if principal != "*" else "*",
            "Action": action, "Resource": "*", **kw}


ROOT_ALL = kst("arn:aws:iam::{acct}:root", Sid="root")
NO_ID = "no identity-based policy allows"
ID_DENY = "with an explicit deny in an identity-based policy"
RES_DENY = "with an explicit deny in a resource-based policy"
AD = "AccessDeniedException"
S3_VIA = "s3.us-east-1.amazonaws.com"

CASES = [
    # same account, default key policy (root delegation) + identity policies
    Case("same-identity-allow", [st(action="kms:Encrypt")]),
    Case("same-identity-wildcard-action", [st(action="kms:Enc*")]),
    Case("same-no-identity-policy", None, expect=f"{AD}:{NO_ID} the kms:Encrypt action"),
    Case("same-identity-other-action", [st(action="kms:Decrypt")], expect=f"{AD}:{NO_ID}"),
    Case("root-default-policy", None, caller="root"),
    Case("key-policy-names-user", None, key_policy=[ROOT_ALL, kst("{user_arn}", Sid="u",
                                                                  action="kms:Encrypt")]),
    Case("key-policy-star", None, key_policy=[ROOT_ALL, kst("*", action="kms:Encrypt")]),
    Case("key-policy-without-root-denies-root", None, caller="root",
         key_policy=[kst("arn:aws:iam::{acct}:user/nobody")], expect=AD),
    Case("key-policy-without-root-ignores-iam", [st()],
         key_policy=[kst("arn:aws:iam::{acct}:user/nobody")],
         expect=f"{AD}:no resource-based policy allows"),
    # explicit deny
    Case("identity-deny-wins", [st(), st(DENY, "kms:Encrypt")], expect=f"{AD}:{ID_DENY}"),
    Case("key-policy-deny-wins", [st()], key_policy=[ROOT_ALL, kst("{user_arn}", DENY,
                                                                   "kms:Encrypt")],
         expect=f"{AD}:{RES_DENY}"),
    Case("key-policy-deny-root-too", None, caller="root",
         key_policy=[ROOT_ALL, kst("*", DENY, "kms:Encrypt")], expect=f"{AD}:{RES_DENY}"),
    Case("deny-other-action-irrelevant", [st(), st(DENY, "kms:Decrypt")]),
    # NotAction / NotResource
    Case("notaction-allows-other", [{"Effect": ALLOW, "NotAction": "kms:Decrypt",
                                     "Resource": "*"}]),
    Case("notaction-excludes", [{"Effect": ALLOW, "NotAction": "kms:Encrypt",
                                 "Resource": "*"}], expect=AD),
    Case("notresource-excludes-key", [{"Effect": ALLOW, "Action": "kms:*",
                                       "NotResource": "{key_arn}"}], expect=AD),
    Case("notresource-other-key", [{"Effect": ALLOW, "Action": "kms:*",
                                    "NotResource": "arn:aws:kms:*:{acct}:key/other"}]),
    Case("resource-exact-arn", [st(resource="{key_arn}")]),
    Case("resource-other-arn", [st(resource="arn:aws:kms:us-east-1:{acct}:key/nope")],
         expect=AD),
    Case("resource-wildcard-arn", [st(resource="arn:aws:kms:*:{acct}:key/*")]),
    Case("deny-notaction", [st(), {"Effect": DENY, "NotAction": "kms:Describe*",
                                   "Resource": "*"}], expect=f"{AD}:{ID_DENY}"),
    # kms:EncryptionContext:<k> and kms:EncryptionContextKeys
    Case("ec-stringequals", [st(Condition={"StringEquals": {
        "kms:EncryptionContext:dept": "eng"}})], ec={"dept": "eng"}),
    Case("ec-stringequals-mismatch", [st(Condition={"StringEquals": {
        "kms:EncryptionContext:dept": "eng"}})], ec={"dept": "ops"}, expect=AD),
    Case("ec-key-name-case-insensitive", [st(Condition={"StringEquals": {
        "kms:EncryptionContext:DEPT": "eng"}})], ec={"dept": "eng"}),
    Case("ec-stringequalsignorecase", [st(Condition={"StringEqualsIgnoreCase": {
        "kms:EncryptionContext:dept": "ENG"}})], ec={"dept": "eng"}),
    Case("ec-stringlike", [st(Condition={"StringLike": {
        "kms:EncryptionContext:project": "proj-*"}})], ec={"project": "proj-42"}),
    Case("ec-stringnotlike", [st(Condition={"StringNotLike": {
        "kms:EncryptionContext:project": "proj-*"}})], ec={"project": "proj-42"}, expect=AD),
    Case("ec-stringnotequals-absent", [st(Condition={"StringNotEquals": {
        "kms:EncryptionContext:dept": "ops"}})]),
    Case("ec-ifexists-absent", [st(Condition={"StringEqualsIfExists": {
        "kms:EncryptionContext:dept": "eng"}})]),
    Case("ec-ifexists-mismatch", [st(Condition={"StringEqualsIfExists": {
        "kms:EncryptionContext:dept": "eng"}})], ec={"dept": "ops"}, expect=AD),
    Case("ec-keys-foranyvalue", [st(Condition={"ForAnyValue:StringEquals": {
        "kms:EncryptionContextKeys": ["a"]}})], ec={"a": "1", "b": "2"}),
    Case("ec-keys-forallvalues-extra-key", [st(Condition={"ForAllValues:StringEquals": {
        "kms:EncryptionContextKeys": ["a", "b"]}})], ec={"a": "1", "c": "2"}, expect=AD),
    Case("ec-keys-forallvalues-empty", [st(Condition={"ForAllValues:StringEquals": {
        "kms:EncryptionContextKeys": ["a"]}})]),
    Case("ec-null-requires-context", [st(Condition={"Null": {
        "kms:EncryptionContextKeys": "false"}})], expect=AD),
    Case("ec-null-with-context", [st(Condition={"Null": {
        "kms:EncryptionContextKeys": "false"}})], ec={"x": "y"}),
    Case("ec-decrypt-condition", [st(action="kms:Decrypt", Condition={"StringEquals": {
        "kms:EncryptionContext:dept": "eng"}})], op="Decrypt", ec={"dept": "eng"}),
    Case("ec-in-key-policy", None, key_policy=[ROOT_ALL, kst("{user_arn}", Condition={
        "StringEquals": {"kms:EncryptionContext:dept": "eng"}})], ec={"dept": "ops"},
         expect=AD),
    # global condition keys
    Case("securetransport-required", [st(Condition={"Bool": {"aws:SecureTransport": "true"}})],
         expect=AD),
    Case("securetransport-false", [st(Condition={"Bool": {"aws:SecureTransport": "false"}})]),
    Case("sourceip-in", [st(Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})]),
    Case("sourceip-not-in", [st(Condition={"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}})],
         expect=AD),
    Case("deny-outside-ip", [st(), st(DENY, Condition={"NotIpAddress": {
        "aws:SourceIp": "10.0.0.0/8"}})], expect=f"{AD}:{ID_DENY}"),
    Case("currenttime-after", [st(Condition={"DateGreaterThan": {
        "aws:CurrentTime": "2000-01-01T00:00:00Z"}})]),
    Case("currenttime-before", [st(Condition={"DateLessThan": {
        "aws:CurrentTime": "2000-01-01T00:00:00Z"}})], expect=AD),
    Case("epochtime-numeric", [st(Condition={"NumericGreaterThan": {"aws:EpochTime": "0"}})]),
    Case("requestedregion-match", [st(Condition={"StringEquals": {
        "aws:RequestedRegion": "us-east-1"}})]),
    Case("requestedregion-mismatch", [st(Condition={"StringEquals": {
        "aws:RequestedRegion": "eu-west-1"}})], expect=AD),
    Case("principalarn-arnequals", None, key_policy=[ROOT_ALL, kst("*", Condition={
        "ArnEquals": {"aws:PrincipalArn": "{user_arn}"}})]),
    Case("principalarn-arnlike-other", None, key_policy=[ROOT_ALL, kst("*", Condition={
        "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::{acct}:user/admin-*"}})], expect=AD),
    Case("principalaccount", [st(Condition={"StringEquals": {
        "aws:PrincipalAccount": "{acct}"}})]),
    Case("username-variable", [st(Condition={"StringEquals": {
        "kms:EncryptionContext:owner": "${aws:username}"}})], ec={"owner": "{user_name}"}),
    Case("username-variable-other", [st(Condition={"StringEquals": {
        "kms:EncryptionContext:owner": "${aws:username}"}})], ec={"owner": "someone"},
         expect=AD),
    Case("userid-present", [st(Condition={"StringLike": {"aws:userid": "AIDA*"}})]),
    Case("calleraccount", [st(Condition={"StringEquals": {"kms:CallerAccount": "{acct}"}})]),
    Case("keyspec", [st(Condition={"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}})]),
    Case("keyusage-mismatch", [st(Condition={"StringEquals": {"kms:KeyUsage": "SIGN_VERIFY"}})],
         expect=AD),
    Case("viaservice-direct-call", [st(Condition={"StringEquals": {"kms:ViaService": S3_VIA}})],
         expect=AD),
    Case("viaservice-deny-ifexists", [st(), st(DENY, Condition={
        "StringNotEqualsIfExists": {"kms:ViaService": S3_VIA}})], expect=f"{AD}:{ID_DENY}"),
    # account-level operations
    Case("listkeys-needs-identity", None, op="ListKeys", expect=f"{AD}:{NO_ID}"),
    Case("listkeys-allowed", [st(action="kms:ListKeys")], op="ListKeys"),
    Case("createkey-allowed", [st(action="kms:CreateKey")], op="CreateKey"),
    Case("describe-via-list-wildcard", [st(action=["kms:Describe*", "kms:List*"])],
         op="DescribeKey"),
    # cross account
    Case("xacct-both-allow", [st()], caller="xuser",
         key_policy=[ROOT_ALL, kst("arn:aws:iam::{xacct}:root")]),
    Case("xacct-no-identity", None, caller="xuser",
         key_policy=[ROOT_ALL, kst("arn:aws:iam::{xacct}:root")], expect=f"{AD}:{NO_ID}"),
    Case("xacct-key-policy-silent", [st()], caller="xuser",
         expect=f"{AD}:no resource-based policy allows"),
    Case("xacct-key-policy-names-user", [st(action="kms:Encrypt")], caller="xuser",
         key_policy=[ROOT_ALL, kst("{user_arn}", action="kms:Encrypt")]),
    Case("xacct-named-user-needs-identity", None, caller="xuser",
         key_policy=[ROOT_ALL, kst("{user_arn}", action="kms:Encrypt")], expect=AD),
    Case("xacct-account-id-principal", [st()], caller="xuser",
         key_policy=[ROOT_ALL, kst("{xacct}", action=["kms:Encrypt", "kms:Decrypt"])]),
    Case("xacct-root", None, caller="xroot",
         key_policy=[ROOT_ALL, kst("arn:aws:iam::{xacct}:root")]),
    Case("xacct-calleraccount-condition", [st()], caller="xuser",
         key_policy=[ROOT_ALL, kst("*", Condition={"StringEquals": {
             "kms:CallerAccount": "{acct}"}})], expect=AD),
    Case("xacct-identity-deny", [st(), st(DENY, "kms:Encrypt")], caller="xuser",
         key_policy=[ROOT_ALL, kst("arn:aws:iam::{xacct}:root")], expect=f"{AD}:{ID_DENY}"),
    # grants
    Case("grant-allows", None, grant={"Operations": ["Encrypt"]}),
    Case("grant-other-operation", None, op="Decrypt", grant={"Operations": ["Encrypt"]},
         expect=AD),
    Case("grant-ec-equals-match", None, ec={"a": "1"}, grant={
        "Operations": ["Encrypt"], "Constraints": {"EncryptionContextEquals": {"a": "1"}}}),
    Case("grant-ec-equals-extra", None, ec={"a": "1", "b": "2"}, grant={
        "Operations": ["Encrypt"], "Constraints": {"EncryptionContextEquals": {"a": "1"}}},
         expect=AD),
    Case("grant-ec-subset-extra", None, ec={"a": "1", "b": "2"}, grant={
        "Operations": ["Encrypt"], "Constraints": {"EncryptionContextSubset": {"a": "1"}}}),
    Case("grant-ec-subset-missing", None, ec={"b": "2"}, grant={
        "Operations": ["Encrypt"], "Constraints": {"EncryptionContextSubset": {"a": "1"}}},
         expect=AD),
    Case("grant-decrypt-with-constraint", None, op="Decrypt", ec={"a": "1"}, grant={
        "Operations": ["Decrypt"], "Constraints": {"EncryptionContextSubset": {"a": "1"}}}),
    Case("grant-not-over-explicit-deny", [st(DENY, "kms:Encrypt")],
         grant={"Operations": ["Encrypt"]}, expect=f"{AD}:{ID_DENY}"),
    Case("grant-cross-account-user", None, caller="xuser", grant={"Operations": ["Encrypt"]}),
    Case("grant-key-policy-without-root", None, key_policy=[
        kst("arn:aws:iam::{acct}:user/nobody")], grant={"Operations": ["Encrypt"]}),
    Case("creategrant-grantoperations-ok", [st(Condition={"ForAllValues:StringEquals": {
        "kms:GrantOperations": ["Encrypt", "Decrypt"]}})], op="CreateGrant",
         grant_request={"Operations": ["Encrypt"]}),
    Case("creategrant-grantoperations-bad", [st(Condition={"ForAllValues:StringEquals": {
        "kms:GrantOperations": ["Encrypt", "Decrypt"]}})], op="CreateGrant",
         grant_request={"Operations": ["Encrypt", "ReEncryptFrom"]}, expect=AD),
    Case("creategrant-not-for-aws-resource", [st(), st(DENY, "kms:CreateGrant", Condition={
        "Bool": {"kms:GrantIsForAWSResource": "false"}})], op="CreateGrant",
         grant_request={"Operations": ["Encrypt"]}, expect=f"{AD}:{ID_DENY}"),
    Case("creategrant-for-aws-resource-required", [st(Condition={
        "Bool": {"kms:GrantIsForAWSResource": "true"}})], op="CreateGrant",
         grant_request={"Operations": ["Encrypt"]}, expect=AD),
    Case("creategrant-via-grant-subset", None, op="CreateGrant",
         grant={"Operations": ["CreateGrant", "Encrypt", "Decrypt"]},
         grant_request={"Operations": ["Encrypt"]}),
    Case("creategrant-via-grant-widening", None, op="CreateGrant",
         grant={"Operations": ["CreateGrant", "Encrypt"]},
         grant_request={"Operations": ["Encrypt", "Decrypt"]}, expect=AD),
    # ReEncrypt needs ReEncryptFrom on the source and ReEncryptTo on the destination
    Case("reencrypt-both", [st(action=["kms:ReEncrypt*"])], op="ReEncrypt"),
    Case("reencrypt-only-from", [st(action=["kms:ReEncryptFrom"])], op="ReEncrypt",
         expect=f"{AD}:kms:ReEncryptTo"),
]


def _run(env: Env, case: Case) -> Any:
    srv = env.server
    root = env.root_kms
    key = root.create_key(KeySpec=case.key_spec, KeyUsage=case.key_usage)["KeyMetadata"]
    key_arn = key["Arn"]
    blob = None
    if case.op in ("Decrypt", "ReEncrypt"):
        blob = root.encrypt(KeyId=key_arn, Plaintext=b"secret",
                            **({"EncryptionContext": case.ec} if case.ec else {}))[
            "CiphertextBlob"]
    user = None
    if case.caller in ("user", "xuser"):
        user = make_user(env, None, other_account=case.caller == "xuser")
        v = {"acct": env.acct, "xacct": env.xacct, "key_arn": key_arn, "user_arn": user.arn,
             "user_name": user.name}
        if case.identity:
            user.iam.put_user_policy(UserName=user.name, PolicyName="p",
                                     PolicyDocument=_doc(fill(case.identity, v)))
        client = user.kms(srv, case.region)
        principal = user.arn
    else:
        v = {"acct": env.acct, "xacct": env.xacct, "key_arn": key_arn, "user_arn": "",
             "user_name": ""}
        client = root if case.caller == "root" else env.x_kms
        principal = (f"arn:aws:iam::{env.acct}:root" if case.caller == "root"
                     else f"arn:aws:iam::{env.xacct}:root")
    if case.grant:
        root.create_grant(KeyId=key_arn, GranteePrincipal=principal, **case.grant)
    if case.key_policy is not None:
        root.put_key_policy(KeyId=key_arn, PolicyName="default",
                            Policy=_doc(fill(case.key_policy, v)),
                            BypassPolicyLockoutSafetyCheck=True)
    ec = fill(case.ec, v) if case.ec else None
    ec_kw = {"EncryptionContext": ec} if ec else {}
    if case.op == "Encrypt":
        return client.encrypt(KeyId=key_arn, Plaintext=b"hi", **ec_kw)
    if case.op == "Decrypt":
        return client.decrypt(CiphertextBlob=blob, **ec_kw)
    if case.op == "GenerateDataKey":
        return client.generate_data_key(KeyId=key_arn, KeySpec="AES_256", **ec_kw)
    if case.op == "DescribeKey":
        return client.describe_key(KeyId=key_arn)
    if case.op == "ListKeys":
        return client.list_keys()
    if case.op == "CreateKey":
        return client.create_key(Description="by user")
    if case.op == "CreateGrant":
        return client.create_grant(KeyId=key_arn, GranteePrincipal=f"arn:aws:iam::"
                                   f"{env.acct}:user/someone", **case.grant_request)
    if case.op == "ReEncrypt":
        return client.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key_arn, **(
            {"SourceEncryptionContext": ec} if ec else {}))
    raise AssertionError(case.op)


def test_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kms_authorization(env, case):
    if case.expect == "ok":
        _run(env, case)
        return
    code, _, fragment = case.expect.partition(":")
    with pytest.raises(ClientError) as exc:
        _run(env, case)
    assert error_code(exc) == code, exc.value.response
    if fragment:
        assert fragment in _message(exc), _message(exc)


# -- error message shape, disabled keys, the audit record ----------------------------------------

def test_denied_message_is_aws_shaped(env):
    user = make_user(env, None)
    key_arn = env.root_kms.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as exc:
        user.kms(env.server).decrypt(CiphertextBlob=env.root_kms.encrypt(
            KeyId=key_arn, Plaintext=b"x")["CiphertextBlob"])
    assert _message(exc) == (
        f"User: {user.arn} is not authorized to perform: kms:Decrypt on resource: {key_arn} "
        "because no identity-based policy allows the kms:Decrypt action")


def test_inactive_access_key_is_refused(env):
    user = make_user(env, [st()])
    kms = user.kms(env.server)
    key_arn = env.root_kms.create_key()["KeyMetadata"]["Arn"]
    kms.encrypt(KeyId=key_arn, Plaintext=b"x")
    env.root_iam.update_access_key(UserName=user.name, AccessKeyId=user.key_id,
                                   Status="Inactive")
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId=key_arn, Plaintext=b"x")
    assert error_code(exc) == "UnrecognizedClientException"
    env.root_iam.update_access_key(UserName=user.name, AccessKeyId=user.key_id,
                                   Status="Active")
    kms.encrypt(KeyId=key_arn, Plaintext=b"x")


def test_policy_changes_take_effect_at_once(env):
    user = make_user(env, [st()])
    kms = user.kms(env.server)
    key_arn = env.root_kms.create_key()["KeyMetadata"]["Arn"]
    kms.encrypt(KeyId=key_arn, Plaintext=b"x")
    env.root_iam.put_user_policy(UserName=user.name, PolicyName="deny",
                                 PolicyDocument=_doc([st(DENY, "kms:Encrypt")]))
    with pytest.raises(ClientError):
        kms.encrypt(KeyId=key_arn, Plaintext=b"x")
    env.root_iam.delete_user_policy(UserName=user.name, PolicyName="deny")
    kms.encrypt(KeyId=key_arn, Plaintext=b"x")


def test_aws_managed_key_only_through_s3(env):
    s3 = make_client(env.server)
    bucket = _name("b")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", ServerSideEncryption="aws:kms")
    managed = env.root_kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert managed["KeyManager"] == "AWS"
    with pytest.raises(ClientError) as exc:
        env.root_kms.encrypt(KeyId="alias/aws/s3", Plaintext=b"x")
    assert error_code(exc) == AD
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"


def _audit_events(env: Env) -> list[dict]:
    """Every audit record on disk (the rolling trail, or the older single JSON-lines file)."""
    audit = env.server.data_dir / "audit"
    out = []
    paths = sorted((audit / "trail").glob("*.jsonl")) + sorted(audit.glob("kms-events*.jsonl"))
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def _last_event(env: Env, name: str, arn: str) -> dict:
    found = [e for e in _audit_events(env) if e.get("eventName") == name
             and e.get("userIdentity", {}).get("arn") == arn]
    assert found, f"no {name} event for {arn}"
    return found[-1]


def test_audit_record_explains_decisions(env):
    user = make_user(env, None)
    user.iam.put_user_policy(UserName=user.name, PolicyName="enc", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "AllowEncrypt", "Effect": "Allow", "Action": "kms:Encrypt",
             "Resource": "*"},
            {"Sid": "NoDecrypt", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]}))
    kms = user.kms(env.server)
    key_arn = env.root_kms.create_key()["KeyMetadata"]["Arn"]
    blob = kms.encrypt(KeyId=key_arn, Plaintext=b"x")["CiphertextBlob"]
    ok = _last_event(env, "Encrypt", user.arn)
    assert ok["authorizationDecision"] == {"allowed": True, "reason": "identity-allow",
                                           "policy": "enc", "statementSid": "AllowEncrypt"}
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=blob)
    bad = _last_event(env, "Decrypt", user.arn)
    assert bad["errorCode"] == AD
    assert bad["authorizationDecision"] == {"allowed": False,
                                            "reason": "explicit-deny-identity",
                                            "policy": "enc", "statementSid": "NoDecrypt"}
    # A grant: the record names the grant.
    gid = env.root_kms.create_grant(KeyId=key_arn, GranteePrincipal=user.arn,
                                    Operations=["GenerateDataKey"])["GrantId"]
    kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256")
    ev = _last_event(env, "GenerateDataKey", user.arn)
    assert ev["authorizationDecision"] == {"allowed": True, "reason": "grant-allow",
                                           "grantId": gid}
    # The key policy statement, for the root.
    env.root_kms.describe_key(KeyId=key_arn)
    ev = _last_event(env, "DescribeKey", f"arn:aws:iam::{env.acct}:root")
    assert ev["authorizationDecision"]["policy"] == "key policy"
    assert ev["authorizationDecision"]["statementSid"] == "Enable IAM User Permissions"
    # Grant tokens never reach the trail.
    assert all("grantToken" not in json.dumps(e) for e in _audit_events(env))


# -- grants through the wire ---------------------------------------------------------------------

def test_grant_lifecycle(env):
    root = env.root_kms
    key_arn = root.create_key()["KeyMetadata"]["Arn"]
    alice = make_user(env, None)
    bob = make_user(env, [st(action="kms:ListRetirableGrants")])
    made = root.create_grant(KeyId=key_arn, GranteePrincipal=alice.arn,
                             RetiringPrincipal=bob.arn, Operations=["Encrypt", "Decrypt"],
                             Constraints={"EncryptionContextSubset": {"app": "x"}},
                             Name="app-x")
    assert set(made) >= {"GrantId", "GrantToken"}
    again = root.create_grant(KeyId=key_arn, GranteePrincipal=alice.arn,
                              RetiringPrincipal=bob.arn, Operations=["Encrypt", "Decrypt"],
                              Constraints={"EncryptionContextSubset": {"app": "x"}},
                              Name="app-x")
    assert again["GrantId"] == made["GrantId"]          # Name makes retries idempotent
    grants = root.list_grants(KeyId=key_arn)["Grants"]
    assert len(grants) == 1
    g = grants[0]
    assert g["GranteePrincipal"] == alice.arn and g["RetiringPrincipal"] == bob.arn
    assert g["Operations"] == ["Encrypt", "Decrypt"] and g["Name"] == "app-x"
    assert g["Constraints"] == {"EncryptionContextSubset": {"app": "x"}}
    assert g["IssuingAccount"] == f"arn:aws:iam::{env.acct}:root"
    assert "GrantToken" not in g
    # the grantee uses it, with a grant token as well
    akms = alice.kms(env.server)
    blob = akms.encrypt(KeyId=key_arn, Plaintext=b"p", EncryptionContext={"app": "x"},
                        GrantTokens=[made["GrantToken"]])["CiphertextBlob"]
    assert akms.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "x"})["Plaintext"] == b"p"
    with pytest.raises(ClientError) as exc:
        akms.encrypt(KeyId=key_arn, Plaintext=b"p", GrantTokens=["bm90LWEtdG9rZW4="])
    assert error_code(exc) == "InvalidGrantTokenException"
    # listed for the retiring principal, who may retire it
    bkms = bob.kms(env.server)
    retirable = bkms.list_retirable_grants(RetiringPrincipal=bob.arn)["Grants"]
    assert [r["GrantId"] for r in retirable] == [made["GrantId"]]
    with pytest.raises(ClientError) as exc:
        akms.retire_grant(KeyId=key_arn, GrantId=made["GrantId"])
    assert error_code(exc) == AD                     # the grantee lacks RetireGrant in the grant
    bkms.retire_grant(GrantToken=made["GrantToken"])
    assert root.list_grants(KeyId=key_arn)["Grants"] == []
    with pytest.raises(ClientError) as exc:
        akms.encrypt(KeyId=key_arn, Plaintext=b"p", EncryptionContext={"app": "x"})
    assert error_code(exc) == AD


def test_revoke_grant_needs_key_admin(env):
    root = env.root_kms
    key_arn = root.create_key()["KeyMetadata"]["Arn"]
    user = make_user(env, [st(action="kms:ListGrants")])
    admin = make_user(env, [st(action=["kms:RevokeGrant", "kms:ListGrants"])])
    gid = root.create_grant(KeyId=key_arn, GranteePrincipal=user.arn,
                            Operations=["Encrypt"])["GrantId"]
    with pytest.raises(ClientError) as exc:
        user.kms(env.server).revoke_grant(KeyId=key_arn, GrantId=gid)
    assert error_code(exc) == AD
    assert len(user.kms(env.server).list_grants(KeyId=key_arn)["Grants"]) == 1
    admin.kms(env.server).revoke_grant(KeyId=key_arn, GrantId=gid)
    assert root.list_grants(KeyId=key_arn)["Grants"] == []
    with pytest.raises(ClientError) as exc:
        root.revoke_grant(KeyId=key_arn, GrantId=gid)
    assert error_code(exc) == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        root.revoke_grant(KeyId=key_arn, GrantId="nope")
    assert error_code(exc) == "InvalidGrantIdException"


def test_grantee_with_retire_operation_and_account_root_may_retire(env):
    root = env.root_kms
    key_arn = root.create_key()["KeyMetadata"]["Arn"]
    user = make_user(env, None)
    g1 = root.create_grant(KeyId=key_arn, GranteePrincipal=user.arn,
                           Operations=["Encrypt", "RetireGrant"])["GrantId"]
    g2 = root.create_grant(KeyId=key_arn, GranteePrincipal=user.arn,
                           Operations=["Encrypt"])["GrantId"]
    user.kms(env.server).retire_grant(KeyId=key_arn, GrantId=g1)
    root.retire_grant(KeyId=key_arn, GrantId=g2)
    assert root.list_grants(KeyId=key_arn)["Grants"] == []


def test_create_grant_validation(env):
    root = env.root_kms
    key_arn = root.create_key()["KeyMetadata"]["Arn"]
    sign_key = root.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    with pytest.raises(ClientError) as exc:     # an operation the key cannot do
        root.create_grant(KeyId=sign_key["Arn"], GranteePrincipal=f"arn:aws:iam::{env.acct}"
                          ":user/x", Operations=["Encrypt"])
    assert error_code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        root.create_grant(KeyId=key_arn, GranteePrincipal="not a principal",
                          Operations=["Encrypt"])
    assert error_code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:     # constraints need a symmetric key
        root.create_grant(KeyId=sign_key["Arn"], GranteePrincipal=f"arn:aws:iam::{env.acct}"
                          ":user/x", Operations=["Sign"],
                          Constraints={"EncryptionContextEquals": {"a": "1"}})
    assert error_code(exc) == "ValidationException"
    root.disable_key(KeyId=key_arn)
    with pytest.raises(ClientError) as exc:
        root.create_grant(KeyId=key_arn, GranteePrincipal=f"arn:aws:iam::{env.acct}:user/x",
                          Operations=["Encrypt"])
    assert error_code(exc) == "DisabledException"
    page = root.list_grants(KeyId=sign_key["Arn"], Limit=1)
    assert page["Grants"] == [] and page["Truncated"] is False


def test_sse_kms_uses_requesting_principal_and_via_service(env):
    """S3 calls KMS as the requesting user with kms:ViaService = s3.<region>.amazonaws.com:
    PUT needs kms:GenerateDataKey, GET needs kms:Decrypt; a KMS denial is S3 AccessDenied."""
    s3_root = make_client(env.server)
    bucket = _name("b")
    s3_root.create_bucket(Bucket=bucket)
    key_arn = env.root_kms.create_key()["KeyMetadata"]["Arn"]
    via = {"StringEquals": {"kms:ViaService": S3_VIA}}
    user = make_user(env, [st(action="s3:*"),
                           st(action="kms:GenerateDataKey", Condition=via)])
    s3 = make_client(env.server, "s3", user.key_id, user.secret)
    s3.put_object(Bucket=bucket, Key="o", Body=b"data", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key_arn)
    with pytest.raises(ClientError) as exc:             # no kms:Decrypt yet
        s3.get_object(Bucket=bucket, Key="o")
    assert error_code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:             # not through S3: no kms:ViaService
        user.kms(env.server).generate_data_key(KeyId=key_arn, KeySpec="AES_256")
    assert error_code(exc) == AD
    user.iam.put_user_policy(UserName=user.name, PolicyName="dec", PolicyDocument=_doc(
        [st(action="kms:Decrypt", Condition=via)]))
    assert s3.get_object(Bucket=bucket, Key="o")["Body"].read() == b"data"
    ev = _last_event(env, "Decrypt", user.arn)
    assert ev["userIdentity"]["invokedBy"].startswith("s3.")
    assert ev["authorizationDecision"]["policy"] == "dec"
