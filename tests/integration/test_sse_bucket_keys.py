"""S3 Bucket Keys in the gateway's envelope, on a real KMS (SQLite, injected clocks): every
cached entry is one principal's, every reuse is the KMS's decision as the caller, and expired
entries leave memory (issue 11, findings 1 and 19)."""
from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gateway.s3.errors import S3Error
from gateway.sse.envelope import Envelope, WriteSettings
from gateway.sse.headers import SSE_KMS
from kms.errors import AccessDeniedException, DisabledException
from kms.iam import parse_policy
from kms.model import Caller
from tests.kms_policies import KMS_ADMIN

ACCT = "111122223333"
VIA = "s3.us-east-1.amazonaws.com"
ALICE = Caller(f"arn:aws:iam::{ACCT}:user/alice", ACCT, identity_policies=KMS_ADMIN,
               via_service=VIA)
DENY_USE = parse_policy('{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": '
                        '["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}]}',
                        name="deny-use")
BOB = Caller(f"arn:aws:iam::{ACCT}:user/bob", ACCT, identity_policies=KMS_ADMIN + (DENY_USE,),
             via_service=VIA)


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _run(coro):
    return asyncio.run(coro)


@pytest.fixture
def key_arn(kms):
    return kms.create_key(ALICE)["KeyMetadata"]["Arn"]


def _settings(key_arn: str) -> WriteSettings:
    return WriteSettings(mode=SSE_KMS, key_id=key_arn, bucket_key=True)


def test_expired_bucket_keys_are_dropped_from_memory(kms, key_arn):
    mono = Monotonic()
    env = Envelope(kms, region="us-east-1", bucket_key_ttl=60.0, clock=mono)

    async def scenario():
        dk = await env.new_data_key(ALICE, _settings(key_arn), "b1", "k")
        await env.open_data_key(ALICE, dk.record, "b1", "k", None)
        assert len(env._bucket_keys) == 1 and len(env._opened_bucket_keys) == 1
        mono.t += 61
        # Any later use drops what expired, not only the entry it looks up.
        dk2 = await env.new_data_key(ALICE, _settings(key_arn), "b2", "k")
        await env.open_data_key(ALICE, dk2.record, "b2", "k", None)
        assert len(env._bucket_keys) == 1 and len(env._opened_bucket_keys) == 1
        # And an idle gateway drops them too, when they expire.
        mono.t += 61
        assert env._bucket_keys._timer is not None and env._opened_bucket_keys._timer is not None
        env._bucket_keys._on_timer()
        env._opened_bucket_keys._on_timer()
        assert len(env._bucket_keys) == 0 and len(env._opened_bucket_keys) == 0

    try:
        _run(scenario())
    finally:
        env.close()


def test_cache_entries_are_per_principal_and_each_reuse_is_authorized(kms, sink, key_arn):
    env = Envelope(kms, region="us-east-1", clock=Monotonic())

    async def scenario():
        dk = await env.new_data_key(ALICE, _settings(key_arn), "b", "a")
        await env.open_data_key(ALICE, dk.record, "b", "a", None)
        before = len(sink.records)
        # Warm for Alice: her reuse makes no KMS call and no record.
        dk_again = await env.new_data_key(ALICE, _settings(key_arn), "b", "a2")
        assert dk_again.record["wrapped_key"] == dk.record["wrapped_key"]
        await env.open_data_key(ALICE, dk.record, "b", "a", None)
        assert len(sink.records) == before
        # Bob never gets Alice's entries: his own (denied) calls, each recorded.
        for attempt in (env.new_data_key(BOB, _settings(key_arn), "b", "x"),
                        env.open_data_key(BOB, dk.record, "b", "a", None)):
            with pytest.raises(S3Error) as ei:
                await attempt
            assert ei.value.code == "AccessDenied"
        mine = [r for r in sink.records[before:] if r["userIdentity"]["arn"] == BOB.principal_arn]
        assert [(r["eventName"], r["errorCode"]) for r in mine] == [
            ("GenerateDataKey", "AccessDeniedException"), ("Decrypt", "AccessDeniedException")]
        # A Deny on the warm principal wins at once, and is recorded.
        alice_denied = replace(ALICE, identity_policies=KMS_ADMIN + (DENY_USE,))
        with pytest.raises(S3Error) as ei:
            await env.open_data_key(alice_denied, dk.record, "b", "a", None)
        assert ei.value.code == "AccessDenied"
        assert sink.records[-1]["eventName"] == "Decrypt"
        assert sink.records[-1]["errorCode"] == "AccessDeniedException"
        assert sink.records[-1]["requestParameters"]["encryptionContext"] == {
            "aws:s3:arn": "arn:aws:s3:::b"}
        # So does a disabled key, for writes and reads alike.
        kms.disable_key(ALICE, key_arn)
        for attempt in (env.new_data_key(ALICE, _settings(key_arn), "b", "a3"),
                        env.open_data_key(ALICE, dk.record, "b", "a", None)):
            with pytest.raises(S3Error) as ei:
                await attempt
            assert ei.value.code == "KMS.DisabledException"

    try:
        _run(scenario())
    finally:
        env.close()


def test_authorize_key_use_decides_without_crypto(kms, sink, key_arn):
    ctx = {"aws:s3:arn": "arn:aws:s3:::b"}
    before = len(sink.records)
    assert kms.authorize_key_use(ALICE, "Decrypt", key_arn, encryption_context=ctx) == key_arn
    assert kms.authorize_key_use(ALICE, "GenerateDataKey", key_arn,
                                 encryption_context=ctx) == key_arn
    assert len(sink.records) == before          # an allowed reuse is not a KMS call
    with pytest.raises(AccessDeniedException):
        kms.authorize_key_use(BOB, "GenerateDataKey", key_arn, encryption_context=ctx)
    rec = sink.records[-1]
    assert rec["eventName"] == "GenerateDataKey" and rec["errorCode"] == "AccessDeniedException"
    assert rec["userIdentity"]["invokedBy"] == "s3.amazonaws.com"
    kms.disable_key(ALICE, key_arn)
    with pytest.raises(DisabledException):
        kms.authorize_key_use(ALICE, "Decrypt", key_arn, encryption_context=ctx)
    assert sink.records[-1]["errorCode"] == "DisabledException"
