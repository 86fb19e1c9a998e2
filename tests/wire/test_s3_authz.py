"""S3 authorization through the wire: IAM users and keys, bucket policies, cross-account callers,
anonymous requests. Every case runs real boto3 clients (created with the caller's keys) against
a real ``coffer serve``.

The table: each ``Case`` names the caller (an IAM user of account A or B, either account's
root, an anonymous client, a user whose key was made Inactive), its identity policy, the
bucket policy of account A's bucket, one S3 operation and the expected outcome ("ok" or the
AWS error code). Placeholders in policies: ``{B}`` bucket, ``{A}`` / ``{BA}`` account ids,
``{USER}`` the calling user's ARN, ``{UNAME}`` its name, ``{KX}`` / ``{KY}`` KMS key ARNs.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.wire.clients import error_code
from tests.wire.conftest import _empty_and_delete, make_client, new_account

OBJ = "data/obj.txt"
BODY = b"coffer authz test object"




def _name(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _doc(statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@dataclass
class World:
    server: Any
    acct_a: str
    acct_b: str
    iam_a: Any
    iam_b: Any
    s3_a: Any
    s3_b: Any
    kms_a: Any
    key_x: str
    key_y: str
    b_keys: tuple[str, str]

    def user(self, account: str, statements: list[dict], subst: Callable[[str], str]
             ) -> tuple[str, str, Any, dict]:
        """A new IAM user of ``account`` ("A" / "B") with ``statements`` inline."""
        iam = self.iam_a if account == "A" else self.iam_b
        acct = self.acct_a if account == "A" else self.acct_b
        name = _name()
        iam.create_user(UserName=name)
        arn = f"arn:aws:iam::{acct}:user/{name}"
        if statements:
            iam.put_user_policy(UserName=name, PolicyName="p",
                                PolicyDocument=subst(_doc(statements), arn, name))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        client = make_client(self.server, "s3", key["AccessKeyId"], key["SecretAccessKey"])
        return name, arn, client, key


@pytest.fixture(scope="module")
def world(server) -> World:
    _, *bkey = new_account(server)
    bkey = tuple(bkey)
    sts_b = make_client(server, "sts", *bkey)
    acct_b = sts_b.get_caller_identity()["Account"]
    acct_a = make_client(server, "sts").get_caller_identity()["Account"]
    kms_a = make_client(server, "kms")
    key_x = kms_a.create_key(Description="authz X")["KeyMetadata"]["Arn"]
    key_y = kms_a.create_key(Description="authz Y")["KeyMetadata"]["Arn"]
    return World(server=server, acct_a=acct_a, acct_b=acct_b, iam_a=make_client(server, "iam"),
                 iam_b=make_client(server, "iam", *bkey), s3_a=make_client(server),
                 s3_b=make_client(server, "s3", *bkey), kms_a=kms_a, key_x=key_x, key_y=key_y,
                 b_keys=bkey)


# -- operations: (client, ctx) -> None, raising ClientError on refusal ------------------------

def _get(c, x, key=OBJ):
    assert c.get_object(Bucket=x["B"], Key=key)["Body"].read() == x.get("body", BODY)


def _put_kms(key_field):
    def run(c, x):
        c.put_object(Bucket=x["B"], Key="data/new.txt", Body=b"n", ServerSideEncryption="aws:kms",
                     SSEKMSKeyId=x[key_field])
    return run


def _delete_objects(c, x):
    out = c.delete_objects(Bucket=x["B"], Delete={"Objects": [{"Key": OBJ},
                                                              {"Key": "secret/x.txt"}]})
    errors = {e["Key"]: e["Code"] for e in out.get("Errors", [])}
    deleted = {d["Key"] for d in out.get("Deleted", [])}
    if errors:
        # Surface the per-key outcome as the case's result.
        raise ClientError({"Error": {"Code": "Partial:" + ",".join(
            f"{k}={v}" for k, v in sorted(errors.items())) + ";deleted=" + ",".join(
            sorted(deleted))}}, "DeleteObjects")


def _multipart(c, x):
    up = c.create_multipart_upload(Bucket=x["B"], Key="mp/obj")["UploadId"]
    etag = c.upload_part(Bucket=x["B"], Key="mp/obj", UploadId=up, PartNumber=1,
                         Body=b"p" * 1024)["ETag"]
    c.complete_multipart_upload(Bucket=x["B"], Key="mp/obj", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})


def _multipart_list_parts(c, x):
    up = x["s3_a"].create_multipart_upload(Bucket=x["B"], Key="mp/obj")["UploadId"]
    c.list_parts(Bucket=x["B"], Key="mp/obj", UploadId=up)


OPS: dict[str, Callable] = {
    "GetObject": _get,
    "GetOwnHome": lambda c, x: _get(c, x, f"home/{x['UNAME']}/f.txt"),
    "GetOtherHome": lambda c, x: _get(c, x, "home/other/f.txt"),
    "GetSecret": lambda c, x: _get(c, x, "secret/x.txt"),
    "GetMissing": lambda c, x: c.get_object(Bucket=x["B"], Key="data/missing"),
    "HeadObject": lambda c, x: c.head_object(Bucket=x["B"], Key=OBJ),
    "HeadBucket": lambda c, x: c.head_bucket(Bucket=x["B"]),
    "PutObject": lambda c, x: c.put_object(Bucket=x["B"], Key="data/new.txt", Body=b"n"),
    "PutObjectAES": lambda c, x: c.put_object(Bucket=x["B"], Key="data/new.txt", Body=b"n",
                                              ServerSideEncryption="AES256"),
    "PutObjectKmsX": _put_kms("KX"),
    "PutObjectKmsY": _put_kms("KY"),
    "DeleteObject": lambda c, x: c.delete_object(Bucket=x["B"], Key=OBJ),
    "DeleteObjects": _delete_objects,
    "ListObjectsV2": lambda c, x: c.list_objects_v2(Bucket=x["B"]),
    "ListHome": lambda c, x: c.list_objects_v2(Bucket=x["B"], Prefix="home/", Delimiter="/"),
    "ListOther": lambda c, x: c.list_objects_v2(Bucket=x["B"], Prefix="data/", Delimiter="/"),
    "List5": lambda c, x: c.list_objects_v2(Bucket=x["B"], MaxKeys=5),
    "List500": lambda c, x: c.list_objects_v2(Bucket=x["B"], MaxKeys=500),
    "ListV1": lambda c, x: c.list_objects(Bucket=x["B"]),
    "CopyIn": lambda c, x: c.copy_object(Bucket=x["B"], Key="data/copy.txt",
                                         CopySource={"Bucket": x["B"], "Key": OBJ}),
    "Multipart": _multipart,
    "ListParts": _multipart_list_parts,
    "ListBuckets": lambda c, x: c.list_buckets(),
    "CreateBucket": lambda c, x: c.create_bucket(Bucket=_name("nb")),
    "GetBucketPolicy": lambda c, x: c.get_bucket_policy(Bucket=x["B"]),
    "PutBucketPolicy": lambda c, x: c.put_bucket_policy(Bucket=x["B"], Policy=_doc([{
        "Effect": "Allow", "Principal": {"AWS": x["A"]}, "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{x['B']}/*"}])),
    "GetBucketEncryption": lambda c, x: c.get_bucket_encryption(Bucket=x["B"]),
    "GetBucketLocation": lambda c, x: c.get_bucket_location(Bucket=x["B"]),
}


@dataclass
class Case:
    id: str
    who: str                     # a-user | b-user | a-root | b-root | anon | a-user-inactive
    op: str
    expect: str                  # "ok" or the error code (HEAD: "403" / "404")
    identity: list[dict] = field(default_factory=list)
    bucket_policy: list[dict] = field(default_factory=list)


def allow(action, resource="arn:aws:s3:::{B}/*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="arn:aws:s3:::{B}/*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def grant(principal, action, resource="arn:aws:s3:::{B}/*", effect="Allow", **extra) -> dict:
    p = principal if principal == "*" else {"AWS": principal}
    return {"Effect": effect, "Principal": p, "Action": action, "Resource": resource, **extra}


ALL = "arn:aws:s3:::{B}"
OBJS = "arn:aws:s3:::{B}/*"
REQUIRE_KMS_X = [
    grant("*", "s3:PutObject", effect="Deny", Sid="RequireKms",
          Condition={"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}),
    grant("*", "s3:PutObject", effect="Deny", Sid="RequireKeyX",
          Condition={"StringNotEquals": {
              "s3:x-amz-server-side-encryption-aws-kms-key-id": "{KX}"}}),
]

CASES = [
    # --- same account: identity policies ----------------------------------------------------
    Case("user-no-policy-get", "a-user", "GetObject", "AccessDenied"),
    Case("user-no-policy-head", "a-user", "HeadObject", "403"),
    Case("user-no-policy-list", "a-user", "ListObjectsV2", "AccessDenied"),
    Case("user-no-policy-headbucket", "a-user", "HeadBucket", "403"),
    Case("user-no-policy-put", "a-user", "PutObject", "AccessDenied"),
    Case("user-no-policy-listbuckets", "a-user", "ListBuckets", "AccessDenied"),
    Case("user-no-policy-createbucket", "a-user", "CreateBucket", "AccessDenied"),
    Case("user-no-policy-getbucketpolicy", "a-user", "GetBucketPolicy", "AccessDenied"),
    Case("user-no-policy-location", "a-user", "GetBucketLocation", "AccessDenied"),
    Case("user-allow-get", "a-user", "GetObject", "ok", [allow("s3:GetObject")]),
    Case("user-allow-get-head", "a-user", "HeadObject", "ok", [allow("s3:GetObject")]),
    Case("user-allow-get-not-put", "a-user", "PutObject", "AccessDenied",
         [allow("s3:GetObject")]),
    Case("user-wildcard-action", "a-user", "PutObject", "ok", [allow("s3:Put*")]),
    Case("user-allow-list", "a-user", "ListObjectsV2", "ok", [allow("s3:ListBucket", ALL)]),
    Case("user-listbucket-wrong-resource", "a-user", "ListObjectsV2", "AccessDenied",
         [allow("s3:ListBucket", OBJS)]),
    Case("user-listbucket-headbucket", "a-user", "HeadBucket", "ok",
         [allow("s3:ListBucket", ALL)]),
    Case("user-listbucket-v1", "a-user", "ListV1", "ok", [allow("s3:ListBucket", ALL)]),
    Case("user-listallmybuckets", "a-user", "ListBuckets", "ok",
         [allow("s3:ListAllMyBuckets", "*")]),
    Case("user-createbucket", "a-user", "CreateBucket", "ok",
         [allow("s3:CreateBucket", "arn:aws:s3:::nb-*")]),
    Case("user-location", "a-user", "GetBucketLocation", "ok",
         [allow("s3:GetBucketLocation", ALL)]),
    Case("user-encryption-config", "a-user", "GetBucketEncryption", "ok",
         [allow("s3:GetEncryptionConfiguration", ALL)]),
    Case("user-explicit-deny-identity", "a-user", "GetObject", "AccessDenied",
         [allow("s3:*", "*"), deny("s3:GetObject")]),
    Case("user-explicit-deny-other-action", "a-user", "PutObject", "ok",
         [allow("s3:*", "*"), deny("s3:GetObject")]),
    Case("user-notaction-allows-get", "a-user", "GetObject", "ok",
         [{"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": "*"}]),
    Case("user-notaction-excludes-delete", "a-user", "DeleteObject", "AccessDenied",
         [{"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": "*"}]),
    Case("user-notresource-allows", "a-user", "GetObject", "ok",
         [{"Effect": "Allow", "Action": "s3:GetObject",
           "NotResource": "arn:aws:s3:::{B}/secret/*"}]),
    Case("user-notresource-excludes", "a-user", "GetSecret", "AccessDenied",
         [{"Effect": "Allow", "Action": "s3:GetObject",
           "NotResource": "arn:aws:s3:::{B}/secret/*"}]),
    Case("user-policy-variable-own", "a-user", "GetOwnHome", "ok",
         [allow("s3:GetObject", "arn:aws:s3:::{B}/home/${aws:username}/*")]),
    Case("user-policy-variable-other", "a-user", "GetOtherHome", "AccessDenied",
         [allow("s3:GetObject", "arn:aws:s3:::{B}/home/${aws:username}/*")]),
    # s3:prefix / s3:delimiter / s3:max-keys on ListBucket
    Case("prefix-condition-match", "a-user", "ListHome", "ok",
         [allow("s3:ListBucket", ALL, Condition={"StringLike": {"s3:prefix": "home/*"}})]),
    Case("prefix-condition-other", "a-user", "ListOther", "AccessDenied",
         [allow("s3:ListBucket", ALL, Condition={"StringLike": {"s3:prefix": "home/*"}})]),
    Case("prefix-condition-absent", "a-user", "ListObjectsV2", "AccessDenied",
         [allow("s3:ListBucket", ALL, Condition={"StringLike": {"s3:prefix": "home/*"}})]),
    Case("delimiter-condition", "a-user", "ListHome", "ok",
         [allow("s3:ListBucket", ALL, Condition={"StringEquals": {"s3:delimiter": "/"}})]),
    Case("max-keys-within", "a-user", "List5", "ok",
         [allow("s3:ListBucket", ALL,
                Condition={"NumericLessThanEquals": {"s3:max-keys": "10"}})]),
    Case("max-keys-over", "a-user", "List500", "AccessDenied",
         [allow("s3:ListBucket", ALL,
                Condition={"NumericLessThanEquals": {"s3:max-keys": "10"}})]),
    # global condition keys
    Case("sourceip-match", "a-user", "GetObject", "ok",
         [allow("s3:GetObject", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})]),
    Case("sourceip-mismatch", "a-user", "GetObject", "AccessDenied",
         [allow("s3:GetObject", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})]),
    Case("sourceip-bucket-deny-root", "a-root", "GetObject", "AccessDenied", [],
         [grant("*", "s3:*", OBJS, effect="Deny",
                Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})]),
    Case("securetransport-deny-http", "a-root", "GetObject", "AccessDenied", [],
         [grant("*", "s3:*", OBJS, effect="Deny",
                Condition={"Bool": {"aws:SecureTransport": "false"}})]),
    Case("securetransport-required-by-identity", "a-user", "GetObject", "AccessDenied",
         [allow("s3:GetObject", Condition={"Bool": {"aws:SecureTransport": "true"}})]),
    Case("currenttime-after", "a-user", "GetObject", "ok",
         [allow("s3:GetObject",
                Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})]),
    Case("currenttime-before", "a-user", "GetObject", "AccessDenied",
         [allow("s3:GetObject",
                Condition={"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})]),
    Case("requested-region", "a-user", "GetObject", "ok",
         [allow("s3:GetObject", Condition={"StringEquals": {
             "aws:RequestedRegion": "us-east-1"}})]),
    Case("requested-region-other", "a-user", "GetObject", "AccessDenied",
         [allow("s3:GetObject", Condition={"StringEquals": {
             "aws:RequestedRegion": "eu-west-1"}})]),
    Case("username-condition", "a-user", "GetObject", "ok",
         [allow("s3:GetObject", Condition={"StringEquals": {"aws:username": "{UNAME}"}})]),
    Case("principalarn-bucket-deny-users", "a-user", "GetObject", "AccessDenied",
         [allow("s3:GetObject")],
         [grant("*", "s3:GetObject", effect="Deny",
                Condition={"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::{A}:root"}})]),
    Case("principalarn-bucket-deny-users-root-ok", "a-root", "GetObject", "ok", [],
         [grant("*", "s3:GetObject", effect="Deny",
                Condition={"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::{A}:root"}})]),
    Case("principalaccount-condition", "a-user", "GetObject", "ok",
         [allow("s3:GetObject", Condition={"StringEquals": {"aws:PrincipalAccount": "{A}"}})]),
    # --- same account: bucket policy -------------------------------------------------------
    Case("bucket-policy-grants-user", "a-user", "GetObject", "ok", [],
         [grant("{USER}", "s3:GetObject")]),
    Case("bucket-policy-grants-account-not-user", "a-user", "GetObject", "AccessDenied", [],
         [grant("arn:aws:iam::{A}:root", "s3:GetObject")]),
    Case("bucket-policy-deny-beats-identity", "a-user", "GetObject", "AccessDenied",
         [allow("s3:GetObject")], [grant("{USER}", "s3:GetObject", effect="Deny")]),
    Case("bucket-policy-deny-root", "a-root", "DeleteObject", "AccessDenied", [],
         [grant("*", "s3:DeleteObject", effect="Deny")]),
    Case("bucket-policy-owner-root-keeps-policy-access", "a-root", "PutBucketPolicy", "ok", [],
         [grant("*", "s3:*", [ALL, OBJS], effect="Deny")]),
    Case("bucket-policy-grants-policy-read", "a-user", "GetBucketPolicy", "ok", [],
         [grant("{USER}", "s3:GetBucketPolicy", ALL)]),
    # "deny PutObject unless SSE aws:kms with key X"
    Case("require-kms-x-plain", "a-root", "PutObject", "AccessDenied", [], REQUIRE_KMS_X),
    Case("require-kms-x-aes", "a-root", "PutObjectAES", "AccessDenied", [], REQUIRE_KMS_X),
    Case("require-kms-x-other-key", "a-root", "PutObjectKmsY", "AccessDenied", [],
         REQUIRE_KMS_X),
    Case("require-kms-x-ok", "a-root", "PutObjectKmsX", "ok", [], REQUIRE_KMS_X),
    Case("require-kms-x-multipart-no-sse", "a-root", "Multipart", "AccessDenied", [],
         REQUIRE_KMS_X),
    # --- missing keys: ListBucket decides 404 vs 403 ---------------------------------------
    Case("missing-key-without-listbucket", "a-user", "GetMissing", "AccessDenied",
         [allow("s3:GetObject")]),
    Case("missing-key-with-listbucket", "a-user", "GetMissing", "NoSuchKey",
         [allow("s3:GetObject"), allow("s3:ListBucket", ALL)]),
    Case("missing-key-root", "a-root", "GetMissing", "NoSuchKey"),
    # --- multi-object operations -----------------------------------------------------------
    Case("delete-objects-per-key", "a-user", "DeleteObjects",
         "Partial:secret/x.txt=AccessDenied;deleted=data/obj.txt",
         [allow("s3:DeleteObject", "arn:aws:s3:::{B}/data/*")]),
    Case("copy-needs-source-get", "a-user", "CopyIn", "AccessDenied",
         [allow("s3:PutObject")]),
    Case("copy-with-source-get", "a-user", "CopyIn", "ok",
         [allow(["s3:PutObject", "s3:GetObject"])]),
    Case("multipart-putobject-suffices", "a-user", "Multipart", "ok", [allow("s3:PutObject")]),
    Case("listparts-needs-its-action", "a-user", "ListParts", "AccessDenied",
         [allow("s3:PutObject")]),
    Case("listparts-allowed", "a-user", "ListParts", "ok",
         [allow("s3:ListMultipartUploadParts")]),
    # --- disabled access key ---------------------------------------------------------------
    Case("inactive-key", "a-user-inactive", "GetObject", "InvalidAccessKeyId",
         [allow("s3:*", "*")]),
    # --- anonymous -------------------------------------------------------------------------
    Case("anon-no-policy", "anon", "GetObject", "AccessDenied"),
    Case("anon-public-read", "anon", "GetObject", "ok", [], [grant("*", "s3:GetObject")]),
    Case("anon-public-read-not-list", "anon", "ListObjectsV2", "AccessDenied", [],
         [grant("*", "s3:GetObject")]),
    Case("anon-public-read-not-put", "anon", "PutObject", "AccessDenied", [],
         [grant("*", "s3:GetObject")]),
    Case("anon-account-principal-not-enough", "anon", "GetObject", "AccessDenied", [],
         [grant("{A}", "s3:GetObject")]),
    Case("anon-listbuckets", "anon", "ListBuckets", "AccessDenied"),
    # --- cross account ---------------------------------------------------------------------
    Case("cross-both-allow", "b-user", "GetObject", "ok", [allow("s3:GetObject")],
         [grant("arn:aws:iam::{BA}:root", "s3:GetObject")]),
    Case("cross-no-bucket-policy", "b-user", "GetObject", "AccessDenied",
         [allow("s3:GetObject")]),
    Case("cross-no-identity-policy", "b-user", "GetObject", "AccessDenied", [],
         [grant("arn:aws:iam::{BA}:root", "s3:GetObject")]),
    Case("cross-user-named-still-needs-identity", "b-user", "GetObject", "AccessDenied", [],
         [grant("{USER}", "s3:GetObject")]),
    Case("cross-user-named-with-identity", "b-user", "GetObject", "ok",
         [allow("s3:GetObject")], [grant("{USER}", "s3:GetObject")]),
    Case("cross-account-id-principal", "b-user", "ListObjectsV2", "ok",
         [allow("s3:ListBucket", ALL)], [grant("{BA}", "s3:ListBucket", ALL)]),
    Case("cross-root-with-bucket-policy", "b-root", "GetObject", "ok", [],
         [grant("arn:aws:iam::{BA}:root", "s3:GetObject")]),
    Case("cross-root-without-bucket-policy", "b-root", "GetObject", "AccessDenied"),
    Case("cross-root-head-bucket-denied", "b-root", "HeadBucket", "403"),
    Case("cross-bucket-policy-deny", "b-user", "GetObject", "AccessDenied",
         [allow("s3:GetObject")],
         [grant("arn:aws:iam::{BA}:root", "s3:GetObject"),
          grant("{USER}", "s3:GetObject", effect="Deny")]),
    Case("cross-action-not-granted", "b-user", "PutObject", "AccessDenied",
         [allow("s3:*", "*")], [grant("arn:aws:iam::{BA}:root", "s3:GetObject")]),
    Case("cross-put-granted", "b-user", "PutObject", "ok",
         [allow("s3:PutObject")], [grant("arn:aws:iam::{BA}:root", "s3:PutObject")]),
    Case("cross-root-listbuckets-own-only", "b-root", "ListBuckets", "ok"),
]


def _fill(text: str, ctx: dict[str, str]) -> str:
    for k, v in ctx.items():
        text = text.replace("{" + k + "}", v)
    return text


def _seed_bucket(world: World) -> str:
    bucket = _name("az")
    s3 = world.s3_a
    s3.create_bucket(Bucket=bucket)
    for key in (OBJ, "secret/x.txt", "home/other/f.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=BODY)
    return bucket


def _caller(world: World, case: Case, ctx: dict[str, str]):
    if case.who in ("a-user", "a-user-inactive", "b-user"):
        account = "B" if case.who == "b-user" else "A"
        name = _name()
        iam = world.iam_a if account == "A" else world.iam_b
        acct = world.acct_a if account == "A" else world.acct_b
        iam.create_user(UserName=name)
        ctx.update(USER=f"arn:aws:iam::{acct}:user/{name}", UNAME=name)
        world.s3_a.put_object(Bucket=ctx["B"], Key=f"home/{name}/f.txt", Body=BODY)
        if case.identity:
            iam.put_user_policy(UserName=name, PolicyName="p",
                                PolicyDocument=_fill(_doc(case.identity), ctx))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        if case.who == "a-user-inactive":
            iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"],
                                  Status="Inactive")
        return make_client(world.server, "s3", key["AccessKeyId"], key["SecretAccessKey"])
    ctx.update(USER="arn:aws:iam::{A}:root".replace("{A}", world.acct_a), UNAME="root")
    if case.who == "a-root":
        return world.s3_a
    if case.who == "b-root":
        return world.s3_b
    if case.who == "anon":
        return make_client(world.server, "s3", "x", "y", signature_version=UNSIGNED)
    raise AssertionError(case.who)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_s3_authz_case(world, case):
    bucket = _seed_bucket(world)
    ctx = {"B": bucket, "A": world.acct_a, "BA": world.acct_b, "KX": world.key_x,
           "KY": world.key_y}
    try:
        client = _caller(world, case, ctx)
        if case.bucket_policy:
            world.s3_a.put_bucket_policy(Bucket=bucket,
                                         Policy=_fill(_doc(case.bucket_policy), ctx))
        x: dict[str, Any] = {**ctx, "s3_a": world.s3_a}
        if case.expect == "ok":
            OPS[case.op](client, x)
        else:
            with pytest.raises(ClientError) as exc:
                OPS[case.op](client, x)
            assert error_code(exc.value) == case.expect, exc.value.response
            status = exc.value.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if case.expect in ("AccessDenied", "403", "InvalidAccessKeyId"):
                assert status == 403
    finally:
        world.s3_a.delete_bucket_policy(Bucket=bucket)
        _empty_and_delete(world.s3_a, bucket)


def test_case_table_is_large_enough():
    assert len(CASES) >= 60
    assert {c.who for c in CASES} >= {"a-user", "b-user", "a-root", "b-root", "anon",
                                      "a-user-inactive"}


# -- bucket policy API -------------------------------------------------------------------------

def test_bucket_policy_api(world):
    s3 = world.s3_a
    bucket = _seed_bucket(world)
    try:
        with pytest.raises(ClientError) as exc:
            s3.get_bucket_policy(Bucket=bucket)
        assert error_code(exc.value) == "NoSuchBucketPolicy"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        doc = _doc([grant("*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*", Sid="Public")])
        s3.put_bucket_policy(Bucket=bucket, Policy=doc)
        assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(doc)
        assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
        conditional = _doc([grant("*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
                                  Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})])
        s3.put_bucket_policy(Bucket=bucket, Policy=conditional)
        assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
        for bad in ("{not json",
                    _doc([{"Effect": "Allow", "Action": "s3:GetObject",      # no Principal
                           "Resource": f"arn:aws:s3:::{bucket}/*"}]),
                    _doc([grant("*", "s3:GetObject", "arn:aws:s3:::someone-else/*")]),
                    _doc([grant("*", "kms:Decrypt", f"arn:aws:s3:::{bucket}/*")]),
                    _doc([grant("*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
                                Condition={"Bogus": {"aws:SourceIp": "1.2.3.4"}})])):
            with pytest.raises(ClientError) as exc:
                s3.put_bucket_policy(Bucket=bucket, Policy=bad)
            assert error_code(exc.value) == "MalformedPolicy", bad
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        s3.delete_bucket_policy(Bucket=bucket)
        with pytest.raises(ClientError) as exc:
            s3.get_bucket_policy(Bucket=bucket)
        assert error_code(exc.value) == "NoSuchBucketPolicy"
        with pytest.raises(ClientError) as exc:
            s3.get_bucket_policy_status(Bucket=bucket)
        assert error_code(exc.value) == "NoSuchBucketPolicy"
    finally:
        _empty_and_delete(s3, bucket)


def test_nonexistent_bucket_is_no_such_bucket(world):
    name = _name("nx")
    for client in (world.s3_a, world.s3_b,
                   make_client(world.server, "s3", "x", "y", signature_version=UNSIGNED)):
        with pytest.raises(ClientError) as exc:
            client.get_object(Bucket=name, Key="k")
        assert error_code(exc.value) == "NoSuchBucket"


def test_access_denied_message_names_the_action(world):
    bucket = _seed_bucket(world)
    try:
        name, arn, client, _ = world.user("A", [], lambda t, a, n: t)
        with pytest.raises(ClientError) as exc:
            client.get_object(Bucket=bucket, Key=OBJ)
        msg = exc.value.response["Error"]["Message"]
        assert arn in msg and "s3:GetObject" in msg and f"arn:aws:s3:::{bucket}/{OBJ}" in msg
    finally:
        _empty_and_delete(world.s3_a, bucket)


def test_secure_transport_over_tls(tls_server):
    """The same "deny unless TLS" policy that refuses plain HTTP lets HTTPS through."""
    s3 = make_client(tls_server)
    bucket = _name("tls")
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key=OBJ, Body=BODY)
        s3.put_bucket_policy(Bucket=bucket, Policy=_doc([grant(
            "*", "s3:*", [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            effect="Deny", Condition={"Bool": {"aws:SecureTransport": "false"}})]))
        assert s3.get_object(Bucket=bucket, Key=OBJ)["Body"].read() == BODY
        s3.delete_bucket_policy(Bucket=bucket)
    finally:
        _empty_and_delete(s3, bucket)


# -- the seed scenario: cross-account SSE-KMS read ---------------------------------------------

def test_cross_account_sse_kms_read_needs_all_three(world):
    """Account B's user reads an SSE-KMS object in account A's bucket only when A's bucket
    policy, A's key policy and B's IAM policy all allow it; without any one: AccessDenied."""
    a, b = world.acct_a, world.acct_b
    kms = world.kms_a
    key_arn = kms.create_key(Description="cross-account sse")["KeyMetadata"]["Arn"]
    bucket = _seed_bucket(world)
    world.s3_a.put_object(Bucket=bucket, Key="kms/secret.txt", Body=b"for account B",
                          ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
    owner_stmt = {"Sid": "Owner", "Effect": "Allow",
                  "Principal": {"AWS": f"arn:aws:iam::{a}:root"}, "Action": "kms:*",
                  "Resource": "*"}
    b_stmt = {"Sid": "AccountB", "Effect": "Allow",
              "Principal": {"AWS": f"arn:aws:iam::{b}:root"}, "Action": "kms:Decrypt",
              "Resource": "*"}
    key_policy_both = _doc([owner_stmt, b_stmt])
    key_policy_owner = _doc([owner_stmt])
    bucket_policy = _doc([grant(f"arn:aws:iam::{b}:root", "s3:GetObject",
                                f"arn:aws:s3:::{bucket}/*")])
    s3_stmt = allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*")
    kms_stmt = allow("kms:Decrypt", key_arn)
    name = _name("seed")
    world.iam_b.create_user(UserName=name)
    key = world.iam_b.create_access_key(UserName=name)["AccessKey"]
    user_s3 = make_client(world.server, "s3", key["AccessKeyId"], key["SecretAccessKey"])

    def setup(*, bucket_ok=True, key_ok=True, iam_s3=True, iam_kms=True):
        if bucket_ok:
            world.s3_a.put_bucket_policy(Bucket=bucket, Policy=bucket_policy)
        else:
            world.s3_a.delete_bucket_policy(Bucket=bucket)
        kms.put_key_policy(KeyId=key_arn, PolicyName="default",
                           Policy=key_policy_both if key_ok else key_policy_owner)
        stmts = ([s3_stmt] if iam_s3 else []) + ([kms_stmt] if iam_kms else [])
        world.iam_b.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=_doc(stmts))

    def read():
        return user_s3.get_object(Bucket=bucket, Key="kms/secret.txt")["Body"].read()

    try:
        setup()
        assert read() == b"for account B"
        for missing in ("bucket_ok", "key_ok", "iam_s3", "iam_kms"):
            setup(**{missing: False})
            with pytest.raises(ClientError) as exc:
                read()
            assert error_code(exc.value) == "AccessDenied", missing
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        setup()
        assert read() == b"for account B"
    finally:
        world.s3_a.delete_bucket_policy(Bucket=bucket)
        _empty_and_delete(world.s3_a, bucket)


def test_every_s3_operation_maps_to_an_action():
    from gateway.s3.dispatch import HANDLERS
    from gateway.s3.operations import OPERATIONS
    assert set(HANDLERS) == set(OPERATIONS)
    assert all(spec.action.startswith("s3:") for spec in OPERATIONS.values())
