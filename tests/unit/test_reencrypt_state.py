"""``coffer s3 reencrypt`` without a server: which objects it leaves alone (``plan``), and the
resume state file ``coffer-reencrypt-state/1`` (round trip, refusals, fuzzed parser)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gateway.reencrypt.copier import plan
from gateway.reencrypt.state import STATE_FORMAT, ReencryptError, RunState, Target

ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER = ARN.replace("1234abcd", "9999abcd")
KMS = Target("aws:kms", ARN)
S3 = Target("AES256")

PLAIN: dict = {}
SSE_S3 = {"ServerSideEncryption": "AES256"}
UNDER = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": ARN}
UNDER_BK = {**UNDER, "BucketKeyEnabled": True}
ELSEWHERE = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": OTHER}
SSE_C = {"SSECustomerAlgorithm": "AES256"}


@pytest.mark.parametrize("head,target,only,leave", [
    (PLAIN, KMS, False, False), (SSE_S3, KMS, False, False), (ELSEWHERE, KMS, False, False),
    (SSE_C, KMS, False, False), (UNDER, KMS, False, True), (UNDER_BK, KMS, False, True),
    # Asking for a Bucket Key re-encrypts objects under the key without one, not with one.
    (UNDER, Target("aws:kms", ARN, True), False, False),
    (UNDER_BK, Target("aws:kms", ARN, True), False, True),
    (SSE_S3, S3, False, True), (UNDER, S3, False, False), (PLAIN, S3, False, False),
    # --only-unencrypted: every encrypted object stays, whatever the target.
    (PLAIN, KMS, True, False), (SSE_S3, KMS, True, True), (ELSEWHERE, S3, True, True),
    (SSE_C, S3, True, True),
])
def test_plan(head, target, only, leave):
    assert (plan(head, target, only) is not None) is leave


def _fresh(**kw) -> RunState:
    return RunState(kw.get("bucket", "b"), kw.get("prefix", ""), kw.get("target", KMS),
                    kw.get("only", False))


def test_round_trip_and_atomic_save(tmp_path):
    path = tmp_path / "state.json"
    assert RunState.load(path, _fresh()) == _fresh()          # no file: a fresh run
    st_ = _fresh()
    st_.after = "dir/\uff5e-0042"
    st_.counts.update(reencrypted=3, skipped=2, failed=1)
    st_.failed.append({"key": "k", "code": "AccessDenied"})
    st_.save(path)
    assert json.loads(path.read_bytes())["format"] == STATE_FORMAT
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]   # no temp file left
    assert path.stat().st_mode & 0o777 == 0o600
    back = RunState.load(path, _fresh())
    assert back == st_


@pytest.mark.parametrize("change", [{"bucket": "other"}, {"prefix": "p/"},
                                    {"target": S3}, {"target": Target("aws:kms", OTHER)},
                                    {"only": True}])
def test_state_of_another_run_is_refused(tmp_path, change):
    path = tmp_path / "s.json"
    _fresh().save(path)
    with pytest.raises(ReencryptError, match="belongs to another run"):
        RunState.load(path, _fresh(**change))


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"format": "coffer-reencrypt-state/2"}',
                                  b"[" * 100_000 + b"]" * 100_000])
def test_unknown_or_broken_files_are_refused(data):
    with pytest.raises(ReencryptError):
        RunState.parse(data, "s.json", _fresh())


def test_damaged_fields_are_refused_not_restarted():
    doc = {**_fresh().doc(), "after": 17}
    with pytest.raises(ReencryptError, match="damaged"):
        RunState.parse(json.dumps(doc).encode(), "s.json", _fresh())


_keys = st.sampled_from(["format", "bucket", "prefix", "target", "onlyUnencrypted", "after",
                         "counts", "failed"])
_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_value = _scalar | st.lists(_scalar, max_size=2) | st.builds(
    lambda k, v: {k: v}, st.sampled_from(["mode", "keyArn", "bucketKey", "key", "code"]), _scalar)


@pytest.mark.fuzz
@settings(max_examples=10_000, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.one_of(
    st.binary(max_size=200),
    # Near-valid documents: this run's own state with one field replaced by anything.
    st.tuples(_keys, _value).map(
        lambda kv: json.dumps({**_fresh().doc(), kv[0]: kv[1]}).encode())))
def test_fuzz_state_parser_raises_only_its_error(data):
    try:
        got = RunState.parse(data, "s.json", _fresh())
    except ReencryptError:
        return
    assert got.bucket == "b" and (got.after is None or isinstance(got.after, str))
    assert all(isinstance(v, int) for v in got.counts.values())
