"""Storage, KMS and SSE errors map through one table each (issue 11, section 1), and the S3
record's decisions stay bounded.

Every StorageError subclass, every KMSError class and every SSE error class has an S3 code
with a status; every KMSError has its JSON ``__type``. A class added to any room without an
entry fails here, never as a 500 with an unknown code on the wire.
"""
from __future__ import annotations

import inspect
import json

import pytest

from gateway import errors as ge
from gateway.s3.errors import ERRORS, S3Error
from gateway.sse import record as sse_record
from gateway.sse import stream as sse_stream
from kms import errors as ke
from kms.audit.encode import MAX_RECORD, encode_record
from storage import errors as se


def _subclasses(module, root) -> list[type]:
    return [c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, root)]


STORAGE = _subclasses(se, se.StorageError)
SSE = _subclasses(sse_stream, sse_stream.SSEError) + _subclasses(sse_record,
                                                                  sse_stream.SSEError)


def _s3_ok(err: S3Error) -> None:
    assert isinstance(err, S3Error)
    assert err.code in ERRORS or err.code.startswith("KMS."), err.code
    assert 400 <= err.status < 600 and err.message, err


@pytest.mark.parametrize("cls", STORAGE, ids=lambda c: c.__name__)
def test_every_storage_error_maps_to_an_s3_code(cls):
    exc = cls("x", "owner") if cls is se.BucketExists else cls("x")
    err = ge.storage_to_s3(exc, "bucket", "key")
    _s3_ok(err)
    assert any(isinstance(exc, c) for c, _ in ge.STORAGE_CODES)
    if cls is not se.StorageError:
        assert err.code != "InternalError", cls           # each has its own code


def test_storage_codes_as_aws_names_them():
    assert ge.storage_to_s3(se.NoSuchBucket("b"), "b").fields == {"BucketName": "b"}
    assert ge.storage_to_s3(se.NoSuchKey("k"), "b", "k").fields == {"Key": "k"}
    assert ge.storage_to_s3(se.InvalidKey("k"), "b", "k" * 1025).code == "KeyTooLongError"
    assert ge.storage_to_s3(se.InvalidKey("k"), "b", "\udcff").code == "InvalidArgument"


@pytest.mark.parametrize("cls", ke.all_error_classes(), ids=lambda c: c.__name__)
def test_every_kms_error_maps_to_an_s3_code_and_a_json_type(cls):
    exc = cls("m\udcff")
    _s3_ok(ge.kms_to_s3(exc))
    type_, status, message = ge.kms_json_entry(exc)
    assert type_ == cls.type and type_.endswith(("Exception", "Failure")), type_
    assert 400 <= status < 600 and isinstance(message, str)
    body = json.loads(ge.render_json(type_, message))
    assert body["__type"] == cls.type


def test_kms_errors_as_s3_reports_them():
    assert (ge.kms_to_s3(ke.AccessDeniedException("no")).code,
            ge.kms_to_s3(ke.AccessDeniedException("no")).status) == ("AccessDenied", 403)
    err = ge.kms_to_s3(ke.DisabledException("off"))
    assert (err.code, err.status) == ("KMS.DisabledException", 400)
    assert ge.kms_to_s3(ke.KMSInternalException("x")).code == "InternalError"
    assert ge.kms_to_s3(ke.DependencyTimeoutException("x")).status == 503


@pytest.mark.parametrize("cls", SSE, ids=lambda c: c.__name__)
def test_every_sse_error_maps_to_an_s3_code(cls):
    exc = cls() if cls in (sse_stream.StreamAuthenticationError,
                           sse_record.ChecksumSealError) else cls("detail")
    err = ge.sse_to_s3(exc)
    _s3_ok(err)
    assert "detail" not in err.message                    # crypto failures are opaque


def test_old_names_are_the_one_table():
    from gateway.s3.common import storage_error
    from gateway.sse.envelope import kms_to_s3
    assert storage_error is ge.storage_to_s3 and kms_to_s3 is ge.kms_to_s3


# -- the S3 record's decisions, bounded ----------------------------------------------------

class _Req:
    method = "POST"
    remote = "192.0.2.1"
    content_length = 0
    query: dict = {}

    def __init__(self) -> None:
        self.headers = {"Host": "h", "User-Agent": "ua"}

    def get(self, key, default=None):
        return default


def test_s3_record_decisions_are_bounded():
    from types import SimpleNamespace

    from gateway.audit_trail import AuditTrail
    from kms.audit import MemorySink

    trail = AuditTrail(MemorySink(), region="us-east-1")
    long_key = "k" * 1024
    decisions = [{"action": "s3:DeleteObject", "resource": f"arn:aws:s3:::b/{long_key}{i}",
                  "allowed": i % 2 == 0, "reason": "identity-allow", "policy": "p" * 100,
                  "statementSid": "s"} for i in range(64)]
    note = {"op": SimpleNamespace(name="DeleteObjects", bucket="b", key=None,
                                  data_event=True),
            "auth": None, "decision": decisions[1], "decisions": decisions,
            "decision_count": 1000}
    rec = trail.s3_record(_Req(), note, None, None)
    assert len(rec["authorizationDecisions"]) == 32
    assert rec["authorizationDecisionCount"] == 1000
    assert all(len(d["resource"].encode()) <= 1100 for d in rec["authorizationDecisions"])
    line = encode_record(rec)
    assert len(line) < MAX_RECORD
    assert json.loads(line)["authorizationDecisions"]


def test_a_full_decision_list_keeps_denials():
    from gateway.s3.dispatch import _MAX_NOTED_DECISIONS, Stage
    from kms.iam import AuthzRequest, Decision

    stage = Stage.__new__(Stage)
    stage._note = {}
    allow, deny = Decision(True, "identity-allow"), Decision(False, "explicit-deny-identity")
    for i in range(_MAX_NOTED_DECISIONS + 10):
        req = AuthzRequest(principal_arn="p", action="s3:DeleteObject", resource=f"r{i}")
        stage._record(req, deny if i >= _MAX_NOTED_DECISIONS else allow)
    noted = stage._note["decisions"]
    assert len(noted) == _MAX_NOTED_DECISIONS
    assert sum(not d["allowed"] for d in noted) == 10
    assert stage._note["decision_count"] == _MAX_NOTED_DECISIONS + 10
