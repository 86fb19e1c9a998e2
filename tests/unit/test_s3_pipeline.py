"""The S3 authorization stage (issue 11): every operation the router can name carries an
action and goes through the stage before its handler; the principal and the SSE condition
keys fail closed."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.auth.types import AuthContext, Credential
from gateway.config import Config
from gateway.context import CONTEXT, RequestContext
from gateway.principal_info import Principal, PrincipalError, build_principal
from gateway.s3 import dispatch
from gateway.s3.errors import S3Error
from gateway.s3.operations import (OPERATIONS, Scope, UnknownOperation, make_operation,
                                   parse_max_keys)
from gateway.s3.router import parse_request
from kms.iam import errors as ie
from storage import errors as se
from storage.base import BucketInfo, UploadInfo

OWNER = "111122223333"
BUCKET = "owned-bucket"
SRC = "source-bucket"

# One request per operation name: (method, path?query, headers).
REQUESTS: dict[str, tuple[str, str, dict[str, str]]] = {
    "ListBuckets": ("GET", "/", {}),
    "CreateBucket": ("PUT", f"/{BUCKET}", {}),
    "HeadBucket": ("HEAD", f"/{BUCKET}", {}),
    "DeleteBucket": ("DELETE", f"/{BUCKET}", {}),
    "GetBucketLocation": ("GET", f"/{BUCKET}?location", {}),
    "ListObjects": ("GET", f"/{BUCKET}?prefix=a", {}),
    "ListObjectsV2": ("GET", f"/{BUCKET}?list-type=2&max-keys=7", {}),
    "ListMultipartUploads": ("GET", f"/{BUCKET}?uploads", {}),
    "PutObject": ("PUT", f"/{BUCKET}/k", {}),
    "CopyObject": ("PUT", f"/{BUCKET}/k", {"x-amz-copy-source": f"/{SRC}/src"}),
    "CreateMultipartUpload": ("POST", f"/{BUCKET}/k?uploads", {}),
    "UploadPart": ("PUT", f"/{BUCKET}/k?partNumber=1&uploadId=u", {}),
    "UploadPartCopy": ("PUT", f"/{BUCKET}/k?partNumber=1&uploadId=u",
                       {"x-amz-copy-source": f"{SRC}/src"}),
    "CompleteMultipartUpload": ("POST", f"/{BUCKET}/k?uploadId=u", {}),
    "AbortMultipartUpload": ("DELETE", f"/{BUCKET}/k?uploadId=u", {}),
    "ListParts": ("GET", f"/{BUCKET}/k?uploadId=u", {}),
    "GetObject": ("GET", f"/{BUCKET}/k", {}),
    "HeadObject": ("HEAD", f"/{BUCKET}/k", {}),
    "DeleteObject": ("DELETE", f"/{BUCKET}/k", {}),
    "DeleteObjects": ("POST", f"/{BUCKET}?delete", {}),
    "GetObjectAcl": ("GET", f"/{BUCKET}/k?acl", {}),
    "GetObjectAttributes": ("GET", f"/{BUCKET}/k?attributes", {}),
    "PutObjectAcl": ("PUT", f"/{BUCKET}/k?acl", {}),
    "GetBucketAcl": ("GET", f"/{BUCKET}?acl", {}),
    "PutBucketAcl": ("PUT", f"/{BUCKET}?acl", {}),
    "GetBucketVersioning": ("GET", f"/{BUCKET}?versioning", {}),
    "PutBucketEncryption": ("PUT", f"/{BUCKET}?encryption", {}),
    "DeleteBucketEncryption": ("DELETE", f"/{BUCKET}?encryption", {}),
    "GetBucketEncryption": ("GET", f"/{BUCKET}?encryption", {}),
    "PutBucketPolicy": ("PUT", f"/{BUCKET}?policy", {}),
    "GetBucketPolicy": ("GET", f"/{BUCKET}?policy", {}),
    "DeleteBucketPolicy": ("DELETE", f"/{BUCKET}?policy", {}),
    "GetBucketPolicyStatus": ("GET", f"/{BUCKET}?policyStatus", {}),
    "GetObjectTagging": ("GET", f"/{BUCKET}/k?tagging", {}),
    "PutObjectTagging": ("PUT", f"/{BUCKET}/k?tagging", {}),
    "DeleteObjectTagging": ("DELETE", f"/{BUCKET}/k?tagging", {}),
    "GetBucketTagging": ("GET", f"/{BUCKET}?tagging", {}),
    "PutBucketTagging": ("PUT", f"/{BUCKET}?tagging", {}),
    "DeleteBucketTagging": ("DELETE", f"/{BUCKET}?tagging", {}),
}


class FakeStore:
    """Buckets BUCKET and SRC of OWNER; no policies; uploads as given."""

    def __init__(self, uploads=None, upload_error: Exception | None = None,
                 policy: str | None = None) -> None:
        self.uploads = uploads or {}
        self.upload_error = upload_error
        self.policy = policy

    async def head_bucket(self, name: str) -> BucketInfo:
        if name not in (BUCKET, SRC):
            raise se.NoSuchBucket(name)
        return BucketInfo(name=name, created=0.0, region="us-east-1", owner=OWNER)

    async def get_bucket_config(self, bucket: str, kind: str):
        return {"v": 1, "document": self.policy} if self.policy and kind == "policy" else None

    async def head_object(self, bucket: str, key: str):
        raise se.NoSuchKey(key)         # the tag prefetch finds no object (no tags)

    async def get_multipart_upload(self, bucket: str, upload_id: str) -> UploadInfo:
        if self.upload_error is not None:
            raise self.upload_error
        if upload_id not in self.uploads:
            raise se.NoSuchUpload(upload_id)
        return self.uploads[upload_id]


class FakeEnvelope:
    def in_region(self, region: str) -> "FakeEnvelope":
        return self


def _principal(arn: str = "", account: str = "", method: str = "anonymous",
               policies: tuple = ()) -> Principal:
    cred = None if not arn else Credential(access_key_id="AKIAEXAMPLE", secret_access_key="s",
                                           account_id=account, principal_arn=arn)
    return Principal(arn=arn, account_id=account, access_key_id="AKIAEXAMPLE" if arn else "",
                     user_name=None, user_id=None, source_ip="127.0.0.1",
                     secure_transport=False, user_agent="t", auth_method=method,
                     signed_region="us-east-1", identity_policies=policies, credential=cred)


ROOT = _principal(f"arn:aws:iam::{OWNER}:root", OWNER, "sigv4-header")
STRANGER = _principal("arn:aws:iam::999988887777:root", "999988887777", "sigv4-header")


def _request(name: str) -> web.Request:
    method, path, headers = REQUESTS[name]
    req = make_mocked_request(method, path, headers=headers, app=web.Application())
    req[CONTEXT] = RequestContext(request_id="TESTREQUEST")
    return req


def _op(name: str):
    method, path, headers = REQUESTS[name]
    return parse_request(method, path, None, headers)


def _stage(name: str, principal: Principal, store: FakeStore | None = None):
    store = store or FakeStore()
    note: dict = {}
    return dispatch.Stage(_request(name), _op(name), principal, store, Config(), "us-east-1",
                          note), note


def test_the_router_reaches_every_operation_and_only_those():
    reached = {name: _op(name).name for name in REQUESTS}
    assert reached == {name: name for name in REQUESTS}
    assert set(REQUESTS) == set(OPERATIONS) == set(dispatch.HANDLERS)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_every_operation_carries_its_action(name):
    op = _op(name)
    spec = OPERATIONS[name]
    assert spec.action.startswith("s3:")
    if spec.scope is Scope.KEYS:
        assert op.permissions == ()        # decided per key through the stage
        return
    assert op.permissions and op.permissions[0].action == spec.action
    if spec.copies:
        assert op.permissions[1].action == "s3:GetObject"
        assert op.permissions[1].resource == f"arn:aws:s3:::{SRC}/src"
    expected = {Scope.OBJECT: f"arn:aws:s3:::{BUCKET}/k", Scope.BUCKET: f"arn:aws:s3:::{BUCKET}",
                Scope.ACCOUNT: f"arn:aws:s3:::{BUCKET}" if op.bucket else "arn:aws:s3:::*"
                }[spec.scope]
    assert op.permissions[0].resource == expected


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_no_handler_runs_before_the_stage_allows(name, monkeypatch):
    """Anonymous, no policy: the stage refuses every operation before its handler, except
    DeleteObjects, whose handler can only ask the stage (per key)."""
    called = []

    async def handler(call):
        called.append(call)
        assert call.authz.authorized
        return web.Response(status=204)

    monkeypatch.setattr(dispatch, "HANDLERS", {n: handler for n in OPERATIONS})
    services = dispatch.S3Services(store=FakeStore(), config=Config(), envelope=FakeEnvelope(),
                                   lookup=lambda key_id: None)
    note: dict = {}

    async def run():
        return await dispatch.handle_s3(_request(name), note, services)

    if OPERATIONS[name].scope is Scope.KEYS:
        asyncio.run(run())
        assert called and called[0].op.name == name
        assert asyncio.run(called[0].authz.allowed("s3:DeleteObject", "k")) is False
        assert note["decision"]["action"] == "s3:DeleteObject"
        return
    with pytest.raises(S3Error) as exc:
        asyncio.run(run())
    assert exc.value.code == "AccessDenied"
    assert not called
    if OPERATIONS[name].scope is not Scope.ACCOUNT:
        assert note["decision"]["allowed"] is False
        assert note["decision"]["action"] == OPERATIONS[name].action


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_the_owner_root_passes_the_stage(name):
    stage, note = _stage(name, ROOT)
    asyncio.run(stage.authorize(asyncio.run(FakeStore().head_bucket(BUCKET))))
    assert stage.authorized
    if OPERATIONS[name].scope not in (Scope.KEYS, Scope.ACCOUNT):
        assert note["decision"]["allowed"] is True


def test_a_name_outside_the_table_cannot_become_an_operation():
    with pytest.raises(UnknownOperation):
        make_operation("PutBucketLifecycle", BUCKET, None, {}, {})


def test_missing_bucket_is_no_such_bucket_before_any_decision():
    stage, note = _stage("GetObject", STRANGER)
    with pytest.raises(S3Error) as exc:
        asyncio.run(stage.authorize(None))
    assert exc.value.code == "NoSuchBucket" and "decision" not in note


def test_copy_source_is_authorized_in_the_stage():
    stage, note = _stage("CopyObject", STRANGER)
    with pytest.raises(S3Error) as exc:
        asyncio.run(stage.authorize(asyncio.run(FakeStore().head_bucket(BUCKET))))
    assert exc.value.code == "AccessDenied"


# -- SSE condition keys from the upload fail closed --------------------------------------------

def _upload(mode: str = "aws:kms") -> UploadInfo:
    return UploadInfo(upload_id="u", key="k", initiated=0.0,
                      meta={"sse": {"mode": mode, "key_arn": "arn:aws:kms:us-east-1:1:key/x"}})


DENY_UNLESS_KMS = """{"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
  "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::owned-bucket/*",
  "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}}]}"""


@pytest.mark.parametrize("name", ["UploadPart", "CompleteMultipartUpload"])
def test_upload_sse_keys_come_from_the_upload(name):
    allowed, _ = _stage(name, ROOT, FakeStore({"u": _upload("aws:kms")}, policy=DENY_UNLESS_KMS))
    asyncio.run(allowed.authorize(asyncio.run(FakeStore().head_bucket(BUCKET))))
    denied, _ = _stage(name, ROOT, FakeStore({"u": _upload("AES256")}, policy=DENY_UNLESS_KMS))
    with pytest.raises(S3Error) as exc:
        asyncio.run(denied.authorize(asyncio.run(FakeStore().head_bucket(BUCKET))))
    assert exc.value.code == "AccessDenied"


@pytest.mark.parametrize("error", [se.StorageError("disk"), OSError("io"), ValueError("bad")])
def test_an_unreadable_upload_never_drops_the_sse_keys(error):
    stage, _ = _stage("UploadPart", ROOT, FakeStore(upload_error=error))
    with pytest.raises(type(error)):
        asyncio.run(stage.authorize(asyncio.run(FakeStore().head_bucket(BUCKET))))


def test_an_unknown_upload_has_no_sse_keys_and_is_left_to_the_handler():
    stage, _ = _stage("UploadPart", ROOT, FakeStore())
    asyncio.run(stage.authorize(asyncio.run(FakeStore().head_bucket(BUCKET))))
    assert stage.authorized


def test_an_unparsable_stored_bucket_policy_fails_closed_but_not_for_the_owner_policy_ops():
    store = FakeStore(policy="{not a policy")
    stage, _ = _stage("GetObject", ROOT, store)
    with pytest.raises(S3Error) as exc:
        asyncio.run(stage.authorize(asyncio.run(store.head_bucket(BUCKET))))
    assert exc.value.code == "InternalError"
    stage, _ = _stage("PutBucketPolicy", ROOT, store)
    asyncio.run(stage.authorize(asyncio.run(store.head_bucket(BUCKET))))


# -- the KMS caller is built by the stage, SigV4 only --------------------------------------------

@pytest.mark.parametrize("method", ["anonymous", "sigv2-header", "sigv2-query"])
def test_sse_kms_key_use_needs_sigv4(method):
    who = _principal() if method == "anonymous" else _principal(
        f"arn:aws:iam::{OWNER}:root", OWNER, method)
    stage, _ = _stage("GetObject", who)
    stage.authorized = True
    with pytest.raises(S3Error) as exc:
        stage.caller("aws:kms")
    assert exc.value.code == "InvalidArgument" and exc.value.status == 400
    assert stage.caller("AES256").via_service == "s3.us-east-1.amazonaws.com"


def test_the_caller_carries_the_principal():
    stage, _ = _stage("GetObject", ROOT)
    stage.authorized = True
    caller = stage.caller("aws:kms")
    assert (caller.principal_arn, caller.account_id, caller.request_id) == (
        ROOT.arn, OWNER, "TESTREQUEST")


# -- the principal fails closed -----------------------------------------------------------------

class FakeIdentity:
    def __init__(self, user_error=None, policy_error=None) -> None:
        self.user_error, self.policy_error = user_error, policy_error

    def get_user(self, account, name):
        if self.user_error:
            raise self.user_error

        class U:
            user_id = "AIDAEXAMPLEUSERID"
        return U()

    def identity_policies(self, arn):
        if self.policy_error:
            raise self.policy_error
        return []


USER = AuthContext(credential=Credential(access_key_id="AKIAUSER", secret_access_key="s",
                                         account_id=OWNER,
                                         principal_arn=f"arn:aws:iam::{OWNER}:user/alice",
                                         user_name="alice"),
                   method="sigv4-header", service="s3", region="us-east-1")


def _build(store):
    return build_principal(USER, source_ip="127.0.0.1", secure_transport=False,
                           user_agent="t", store=store)


def test_principal_has_user_id_and_policies():
    p = _build(FakeIdentity())
    assert p.user_id == "AIDAEXAMPLEUSERID" and p.user_name == "alice" and p.sigv4


@pytest.mark.parametrize("store,denied", [
    (FakeIdentity(user_error=ie.NoSuchEntity("gone")), True),
    (FakeIdentity(user_error=sqlite3.OperationalError("locked")), False),
    (FakeIdentity(policy_error=sqlite3.DatabaseError("corrupt")), False),
    (None, False),
])
def test_a_principal_attribute_that_cannot_be_read_fails_the_request(store, denied):
    with pytest.raises(PrincipalError) as exc:
        _build(store)
    assert exc.value.denied is denied


# -- max-keys: one parser for the condition key and the listing ----------------------------------

@pytest.mark.parametrize("raw,value", [(None, None), ("", None), ("0", 0), ("7", 7),
                                       ("+200", 200), ("2147483647", 2147483647)])
def test_max_keys_values(raw, value):
    assert parse_max_keys(raw) == value


@pytest.mark.parametrize("raw", ["-1", "2_00", " 200", "200 ", "\u0662\u0660\u0660", "1e3",
                                 "0x10", "2147483648", "abc"])
def test_max_keys_refused(raw):
    with pytest.raises(S3Error) as exc:
        parse_max_keys(raw)
    assert exc.value.code == "InvalidArgument"


def test_the_condition_key_is_the_number_the_listing_uses():
    op = parse_request("GET", f"/{BUCKET}?list-type=2&max-keys=%2B200", None, {})
    assert op.max_keys == 200 and op.conditions["s3:max-keys"] == 200
