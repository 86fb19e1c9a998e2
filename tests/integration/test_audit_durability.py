"""No change commits off the record, and the trail stays bounded (issue 11, findings 5, 11).

Real SQLite, real trail files, a real FSObjectStore: a state change writes a durable intent
record before it commits, so a trail that cannot be written means the change does not happen;
records nobody authenticated are not fsynced one by one; retention prunes files and the digest
chain still verifies; LookupEvents streams the trail in bounded memory.
"""
from __future__ import annotations

import asyncio
import json
import os
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.audit_trail import AuditTrail, KMSDigestSigner
from gateway.auth.types import Credential
from gateway.s3.errors import S3Error
from kms.audit import AuditEvent, MemorySink, TrailSink, read_trail, trail_files
from kms.audit.digest import write_digest
from kms.audit.lookup import lookup_events
from kms.audit.verify import DELETED, NO_OUTCOME, PRUNED, VALID, verify_trail
from kms.crypto.verify_sig import verify_with_public_key
from kms.errors import KMSInternalException
from kms.model import Caller
from kms.service import KMS
from storage.fs import FSObjectStore

ACCT = "111122223333"
ROOT = Caller(f"arn:aws:iam::{ACCT}:root", ACCT, request_id="req-1", access_key_id="AKIAROOT")
DAY = 86400.0


class _FlakySink(MemorySink):
    """Fails the n-th and later writes when ``fail_from`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_when = None          # predicate on the record, or None

    def _keep(self, line: bytes) -> None:
        if self.fail_when is not None and self.fail_when(json.loads(line)):
            from kms.audit import AuditWriteError
            raise AuditWriteError("disk full")
        super()._keep(line)


def _state(kms: KMS, key_id: str) -> str:
    return kms.describe_key(ROOT, key_id)["KeyMetadata"]["KeyState"]


# -- KMS: intent before commit ----------------------------------------------------------------

def test_schedule_key_deletion_does_not_commit_when_its_intent_cannot_be_written(tmp_path):
    """Before the fix the key went PendingDeletion and only then did the record fail."""
    sink = _FlakySink()
    with KMS.open(tmp_path, audit=sink) as kms:
        kid = kms.create_key(ROOT)["KeyMetadata"]["KeyId"]
        sink.fail_when = lambda rec: rec["eventName"] == "ScheduleKeyDeletion"
        with pytest.raises(KMSInternalException):
            kms.schedule_key_deletion(ROOT, kid, pending_window_in_days=7)
        sink.fail_when = None
        assert _state(kms, kid) == "Enabled"
        sink.fail_when = lambda rec: rec["eventName"] == "DisableKey"
        with pytest.raises(KMSInternalException):
            kms.disable_key(ROOT, kid)
        sink.fail_when = None
        assert _state(kms, kid) == "Enabled"


def test_intent_precedes_commit_and_outcome_names_it(tmp_path):
    sink = _FlakySink()
    with KMS.open(tmp_path, audit=sink) as kms:
        kid = kms.create_key(ROOT)["KeyMetadata"]["KeyId"]
        seen = []
        sink.fail_when = lambda rec: seen.append(
            (rec["eventType"], _state_now(tmp_path, kid))) and False
        kms.schedule_key_deletion(ROOT, kid, pending_window_in_days=7)
        sink.fail_when = None
    # The intent was written while the key was still Enabled (the change not committed).
    assert seen[0] == ("CofferIntent", "Enabled")
    assert seen[-1] == ("AwsApiCall", "PendingDeletion")
    intent = [r for r in sink.intents if r["eventName"] == "ScheduleKeyDeletion"]
    outcome = [r for r in sink.records if r["eventName"] == "ScheduleKeyDeletion"]
    assert len(intent) == len(outcome) == 1
    assert outcome[0]["intentEventID"] == intent[0]["eventID"]
    assert intent[0]["requestID"] == outcome[0]["requestID"] == "req-1"
    assert intent[0]["resources"] == outcome[0]["resources"]
    # A refused or read-only call changes nothing and writes no intent.
    assert not [r for r in sink.intents if r["eventName"] in ("DescribeKey", "Encrypt")]


def _state_now(data_dir: Path, key_id: str) -> str:
    import sqlite3
    con = sqlite3.connect(data_dir / "kms" / "kms.db")
    try:
        row = con.execute("SELECT * FROM keys WHERE key_id=?", (key_id,)).fetchone()
        cols = [d[0] for d in con.execute("SELECT * FROM keys").description]
    finally:
        con.close()
    return str(dict(zip(cols, row))["key_state"])


def test_surrogate_user_agent_is_recorded_not_fatal(tmp_path):
    """aiohttp hands a \\xff header byte over as '\\udcff'; the record used to fail to
    encode after the change had committed."""
    caller = Caller(ROOT.principal_arn, ACCT, request_id="req-ua", user_agent="ua/\udcff\ud800x")
    with KMS.open(tmp_path, audit=TrailSink(tmp_path / "audit")) as kms:
        kid = kms.create_key(caller)["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(caller, kid, pending_window_in_days=7)
        assert _state(kms, kid) == "PendingDeletion"
    recs = [r for r in read_trail(tmp_path / "audit") if r["eventName"] == "ScheduleKeyDeletion"]
    assert recs[0]["userAgent"] == "ua/\\xff\ufffdx"


def test_outcome_lost_after_commit_leaves_a_reported_intent(tmp_path):
    audit = tmp_path / "audit"
    sink = TrailSink(audit)
    with KMS.open(tmp_path, audit=sink) as kms:
        kid = kms.create_key(ROOT)["KeyMetadata"]["KeyId"]
        real = sink._append

        def fail_outcome(line: bytes, *, durable: bool) -> None:
            if b'"CofferIntent"' not in line and b"ScheduleKeyDeletion" in line:
                from kms.audit import AuditWriteError
                raise AuditWriteError("disk full")
            real(line, durable=durable)
        sink._append = fail_outcome
        with pytest.raises(KMSInternalException):       # never reported as a success
            kms.schedule_key_deletion(ROOT, kid, pending_window_in_days=7)
        sink._append = real
        signer = KMSDigestSigner(kms, audit)
        sink.roll()
        write_digest(audit, signer)
    report = verify_trail(audit, (audit / "digest-public-key.pem").read_bytes(),
                          verify_with_public_key)
    assert report.ok
    assert [(f.name, f.status) for f in report.intents] == [("ScheduleKeyDeletion", NO_OUTCOME)]
    assert "req-1" in report.intents[0].detail


def test_scheduled_deletion_waits_for_its_intent(tmp_path):
    clock = [1_700_000_000.0]
    sink = _FlakySink()
    with KMS.open(tmp_path, audit=sink, clock=lambda: clock[0]) as kms:
        kid = kms.create_key(ROOT)["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(ROOT, kid, pending_window_in_days=7)
        clock[0] += 8 * DAY
        sink.fail_when = lambda rec: rec["eventName"] == "DeleteKey"
        with pytest.raises(KMSInternalException):
            kms.apply_due_deletions()
        sink.fail_when = None
        assert _state(kms, kid) == "PendingDeletion"         # still there, still pending
        assert len(kms.apply_due_deletions()) == 1
    done = [r for r in sink.records if r["eventName"] == "DeleteKey"]
    assert len(done) == 1 and done[0]["eventType"] == "AwsServiceEvent"
    assert done[0]["intentEventID"] == sink.intents[-1]["eventID"]


# -- S3: intent before the storage commit -----------------------------------------------------

class _Request(dict):
    method = "DELETE"
    remote = "192.0.2.7"
    content_length = 0
    secure = False

    def __init__(self, ua: str = "aws-cli/2") -> None:
        super().__init__(coffer_request_id="S3REQ1")
        self.headers = {"Host": "h" * 5000, "User-Agent": ua}
        self.query: dict[str, str] = {}


def _note(bucket: str, key: str, cred: Credential | None) -> dict:
    return {"op": SimpleNamespace(name="DeleteObject", operation="DeleteObject", bucket=bucket, key=key,
                                data_event=True),
            "auth": SimpleNamespace(credential=cred, method="sigv4-header")}


ALICE = Credential("AKIAALICE", "secret", ACCT, f"arn:aws:iam::{ACCT}:user/alice", "alice")


async def _s3_delete(tmp_path: Path, sink) -> tuple[bool, Exception | None]:
    store = FSObjectStore(tmp_path / "s3")
    await store.open()
    try:
        await store.create_bucket("bkt", region="us-east-1", owner=ACCT)
        w = await store.open_writer("bkt", "k")
        await w.write(b"data")
        await w.commit('"etag"', {})
        trail = AuditTrail(sink, region="us-east-1")
        audited = trail.wrap_store(store)
        request = _Request(ua="ua/\udcff")

        async def run(note):
            note.update(_note("bkt", "k", ALICE))
            await audited.delete_object("bkt", "k")
            return SimpleNamespace(body=b"", content_length=0, headers={})
        err = None
        try:
            await trail.audited_s3(request, run)
        except S3Error as exc:
            err = exc
        try:
            await store.head_object("bkt", "k")
            present = True
        except Exception:  # noqa: BLE001 - NoSuchKey
            present = False
        return present, err
    finally:
        await store.close()


def test_s3_delete_does_not_happen_when_its_intent_cannot_be_written(tmp_path):
    sink = _FlakySink()
    sink.fail_when = lambda rec: True
    present, err = asyncio.run(_s3_delete(tmp_path, sink))
    assert present and err is not None and err.code == "InternalError"


def test_s3_delete_writes_intent_then_outcome(tmp_path):
    sink = _FlakySink()
    present, err = asyncio.run(_s3_delete(tmp_path, sink))
    assert not present and err is None
    (intent,), (outcome,) = sink.intents, sink.records
    assert (intent["eventName"], outcome["eventName"]) == ("DeleteObject", "DeleteObject")
    assert outcome["intentEventID"] == intent["eventID"]
    assert outcome["userAgent"] == "ua/\\xff"
    assert len(outcome["requestParameters"]["Host"].encode()) <= 256


def test_unauthenticated_failures_are_not_fsynced_one_by_one(tmp_path, monkeypatch):
    syncs = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real(fd)))
    sink = TrailSink(tmp_path)
    trail = AuditTrail(sink, region="us-east-1")

    async def fail(note):
        note["auth"] = SimpleNamespace(credential=None, method="sigv4-header")
        raise S3Error("SignatureDoesNotMatch")

    async def flood(n: int) -> None:
        for _ in range(n):
            with pytest.raises(S3Error):
                await trail.audited_s3(_Request(), fail)
    asyncio.run(flood(50))
    assert syncs == []                                  # 50 failures, no fsync
    assert len(read_trail(tmp_path)) == 10              # the burst; the rest are counted
    trail._write(trail.limiter.flush(), True)           # what the digest task does
    assert len(syncs) == 1
    summary = read_trail(tmp_path)[-1]
    assert summary["eventType"] == "CofferSummary"
    assert summary["additionalEventData"]["suppressedRequests"] == 40
    assert summary["additionalEventData"]["errorCodes"] == {"SignatureDoesNotMatch": 40}
    # An authenticated failure is attributable: recorded in full, durably.
    syncs.clear()

    async def denied(note):
        note.update(_note("b", "k", ALICE))
        raise S3Error("AccessDenied")
    with pytest.raises(S3Error):
        asyncio.run(trail.audited_s3(_Request(), denied))
    assert len(syncs) == 1
    sink.close()


# -- retention ----------------------------------------------------------------------------------

def _event(i: int, t: float) -> AuditEvent:
    return AuditEvent(event_name="Decrypt", event_time=t, region="us-east-1",
                      event_id=f"id-{i:05d}", request_id=f"r{i}", read_only=True,
                      account_id=ACCT, principal_arn=ROOT.principal_arn,
                      request_parameters={"n": i, "pad": "x" * 200})


def test_retention_prunes_in_the_chain_and_verify_tells_pruned_from_deleted(tmp_path):
    audit = tmp_path / "audit"
    now = 1_700_000_000.0
    audit.mkdir()
    kms = KMS.open(tmp_path, audit=MemorySink())     # the signer's own calls: not in files
    signer = KMSDigestSigner(kms, audit)
    clock = [now - 40 * DAY]
    sink = TrailSink(audit, clock=lambda: clock[0])
    for day in range(4):                                # files of day -40, -30, -20, -10
        sink.emit(_event(day, clock[0]))
        sink.roll()
        write_digest(audit, signer, now=clock[0] + 60)
        clock[0] += 10 * DAY
    sink.close()
    names = [p.name for p in trail_files(audit)]
    pem = (audit / "digest-public-key.pem").read_bytes()
    # Keep 25 days: the files of day -40 and -30 go (the KMS's own file is too new).
    write_digest(audit, signer, now=now, retention_days=25)
    left = [p.name for p in trail_files(audit)]
    gone = sorted(set(names) - set(left))
    assert len(gone) == 2
    report = verify_trail(audit, pem, verify_with_public_key)
    assert report.ok, report.to_json()
    status = {f.name: f.status for f in report.files}
    assert [status[n] for n in gone] == [PRUNED, PRUNED]
    assert all(status[n] == VALID for n in left)
    # Keep-forever (no retention) prunes nothing more.
    write_digest(audit, signer, now=now + 60)
    assert [p.name for p in trail_files(audit)] == left
    # A covered file deleted by hand is still reported.
    (audit / "trail" / left[-1]).unlink()
    report = verify_trail(audit, pem, verify_with_public_key)
    assert not report.ok
    assert {f.name: f.status for f in report.files}[left[-1]] == DELETED
    kms.close()


# -- LookupEvents streams -------------------------------------------------------------------

def _big_trail(audit: Path, n: int) -> None:
    sink = TrailSink(audit, max_bytes=256 << 10, fsync=False)
    for i in range(n):
        sink.emit(_event(i, 1_700_000_000.0 + i))
    sink.close()


def test_lookup_streams_with_bounded_memory(tmp_path):
    n = 12_000                                          # ~5 MB of trail in ~19 files
    _big_trail(tmp_path, n)
    assert len(trail_files(tmp_path)) >= 10
    tracemalloc.start()
    try:
        page, token = lookup_events(tmp_path, max_results=50)
        _, newest_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        # Worst case: the only match is the oldest record, so every file is scanned.
        oldest, _ = lookup_events(tmp_path, attributes=[("EventId", "id-00000")])
        _, scan_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r["eventID"] for r in page] == [f"id-{i:05d}" for i in range(n - 1, n - 51, -1)]
    assert token and [r["eventID"] for r in oldest] == ["id-00000"]
    # Loading the trail took ~40 MB of dicts; streaming holds a page and a chunk per file.
    assert newest_peak < 2 << 20, newest_peak
    assert scan_peak < 2 << 20, scan_peak
    nxt, _ = lookup_events(tmp_path, max_results=2, next_token=token)
    assert [r["eventID"] for r in nxt] == [f"id-{n - 51:05d}", f"id-{n - 52:05d}"]


def test_lookup_merges_writers_newest_first(tmp_path):
    """Two workers' files overlap in time: the merge still returns newest first."""
    a = TrailSink(tmp_path, clock=lambda: 1_700_000_000.0)
    b = TrailSink(tmp_path, clock=lambda: 1_700_000_000.0)
    for i in range(10):
        (a if i % 2 else b).emit(_event(i, 1_700_000_000.0 + i))
    a.close()
    b.close()
    assert len(trail_files(tmp_path)) == 2
    page, _ = lookup_events(tmp_path, max_results=50)
    assert [r["eventID"] for r in page] == [f"id-{i:05d}" for i in reversed(range(10))]
