"""S3 objects across the life of their KMS key: rotation, pending deletion, cancel, destruction.

Time is moved without sleeping: the test opens the server's own KMS database (SQLite, WAL, safe
to share) and runs the scheduler's jobs with a clock days or a year ahead, exactly what the
server's scheduler does when that time comes.
"""
from __future__ import annotations

import os
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from kms.audit import trail_files
from kms.service import KMS
from tests.wire.clients import error_code

pytestmark = pytest.mark.wire

DAY = 86400.0


def _scheduler(server, days_ahead: float):
    with KMS.open(server.data_dir, region=server.region) as k:
        now = time.time() + days_ahead * DAY
        return k.apply_due_rotations(now), k.apply_due_deletions(now)


def test_objects_survive_rotations(server, s3, kms, bucket):
    key_id = kms.create_key(Description="rotating")["KeyMetadata"]["KeyId"]
    bodies = {}
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    for i in range(4):
        body = os.urandom(70_000)
        s3.put_object(Bucket=bucket, Key=f"gen-{i}", Body=body, ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key_id)
        bodies[f"gen-{i}"] = body
        if i % 2:
            kms.rotate_key_on_demand(KeyId=key_id)
        else:
            rotated, _ = _scheduler(server, 91 * (i + 1))
            assert any(arn.endswith(key_id) for arn in rotated)
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert len(rotations) >= 3
    for name, body in bodies.items():
        assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == body


def test_pending_deletion_cancel_and_destruction(server, s3, kms, bucket):
    key_id = kms.create_key(Description="doomed")["KeyMetadata"]["KeyId"]
    s3.put_object(Bucket=bucket, Key="doomed", Body=b"important", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doomed")
    assert error_code(e.value) == "KMS.KMSInvalidStateException"
    kms.cancel_key_deletion(KeyId=key_id)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doomed")
    assert error_code(e.value) == "KMS.DisabledException"
    kms.enable_key(KeyId=key_id)
    assert s3.get_object(Bucket=bucket, Key="doomed")["Body"].read() == b"important"

    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    _, deleted = _scheduler(server, 6)
    assert not any(arn.endswith(key_id) for arn in deleted)       # not yet due
    _, deleted = _scheduler(server, 7.01)
    assert any(arn.endswith(key_id) for arn in deleted)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="doomed")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)
    assert error_code(e.value) in ("AccessDenied", "KMS.NotFoundException")
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=key_id)
    assert error_code(e.value) == "NotFoundException"


def test_every_use_during_the_window_is_audited(server, s3, kms, bucket):
    key_id = kms.create_key(Description="watched")["KeyMetadata"]["KeyId"]
    s3.put_object(Bucket=bucket, Key="w", Body=b"x", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=30)
    marker = uuid.uuid4().hex
    for _ in range(2):
        with pytest.raises(ClientError):
            s3.get_object(Bucket=bucket, Key="w", ResponseCacheControl=marker)
    audit = "".join(p.read_text() for p in trail_files(server.data_dir / "audit"))
    attempts = [line for line in audit.splitlines()
                if key_id in line and '"Decrypt"' in line and "KMSInvalidStateException" in line]
    assert len(attempts) >= 2
    kms.cancel_key_deletion(KeyId=key_id)
