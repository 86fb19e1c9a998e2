"""The audit trail cannot be skipped or flooded (issue 11, findings 5 and 11), over the wire.

- A request carrying bytes that are not UTF-8 (a User-Agent with ``\\xff``, sent over a raw
  socket: aiohttp hands the handler ``'\\udcff'``, its surrogateescape decoding) commits its
  change *and* its record (an intent before the commit, the outcome after), never one without
  the other, and is not answered 500.
- Requests nobody authenticated write bounded records (Host capped at 256 bytes) and are rate
  limited per source: the first 10 a minute in full, then one summary record.
- ``--audit-retention-days`` prunes old trail files and ``coffer audit verify`` still passes;
  a file deleted by hand is still reported.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kms.audit import read_trail, trail_files
from tests.wire.clients import raw_request
from tests.wire.conftest import make_client
from tests.wire.server import Server, start_server

pytestmark = pytest.mark.wire

ROOT = Path(__file__).resolve().parents[2]
BAD_UA = b"coffer-test/1.0 \xff\xfe caf\xc3\xa9"          # two bytes that are not UTF-8
BAD_UA_LOGGED = "coffer-test/1.0 \\xff\\xfe caf\u00e9"      # as the record shows them


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Server:
    s = start_server(tmp_path_factory.mktemp("audit-bounds") / "data")
    yield s
    s.stop()


def _signed(srv: Server, service: str, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> dict[str, str]:
    """SigV4 headers for the request (botocore's signer; User-Agent is never signed)."""
    req = AWSRequest(method=method, url=f"{srv.endpoint}{path}", data=body,
                     headers=dict(headers or {}))
    auth = S3SigV4Auth if service == "s3" else SigV4Auth
    auth(Credentials(srv.access_key, srv.secret_key), service, srv.region).add_auth(req)
    out = {"Host": f"127.0.0.1:{srv.port}"}
    out.update({k: v for k, v in req.headers.items() if k.lower() != "host"})
    return out


def _by_request(srv: Server, request_id: str) -> list[dict]:
    return [r for r in read_trail(srv.data_dir / "audit", intents=True)
            if r.get("requestID") == request_id]


def _intent_then_outcome(recs: list[dict], name: str) -> dict:
    assert [(r["eventName"], r["eventType"]) for r in recs] == [
        (name, "CofferIntent"), (name, "AwsApiCall")], recs
    intent, outcome = recs
    assert outcome["intentEventID"] == intent["eventID"]
    assert "errorCode" not in outcome
    return outcome


def test_schedule_key_deletion_with_a_non_utf8_user_agent(srv):
    """Before the fix: the key went PendingDeletion, the record failed to encode, 500."""
    kms = make_client(srv, "kms")
    key_id = kms.create_key(Description="non-utf8 ua")["KeyMetadata"]["KeyId"]
    body = json.dumps({"KeyId": key_id, "PendingWindowInDays": 7}).encode()
    headers = _signed(srv, "kms", "POST", "/", body, {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "TrentService.ScheduleKeyDeletion"})
    status, hdrs, payload = raw_request(srv, "POST", "/", headers, body,
                                 extra=((b"User-Agent", BAD_UA),))
    assert status == 200, payload
    assert json.loads(payload)["KeyState"] == "PendingDeletion"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    rid = hdrs.get("x-amzn-requestid") or hdrs["x-amz-request-id"]
    outcome = _intent_then_outcome(_by_request(srv, rid), "ScheduleKeyDeletion")
    assert outcome["userAgent"] == BAD_UA_LOGGED
    assert outcome["responseElements"]["keyState"] == "PendingDeletion"


def test_delete_object_with_a_non_utf8_user_agent(srv):
    s3 = make_client(srv)
    bucket = f"ua-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="victim", Body=b"data")
    headers = _signed(srv, "s3", "DELETE", f"/{bucket}/victim")
    status, hdrs, payload = raw_request(srv, "DELETE", f"/{bucket}/victim", headers,
                                 extra=((b"User-Agent", BAD_UA),))
    assert status == 204, payload
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    outcome = _intent_then_outcome(_by_request(srv, hdrs["x-amz-request-id"]), "DeleteObject")
    assert outcome["userAgent"] == BAD_UA_LOGGED
    assert outcome["requestParameters"]["key"] == "victim"


def _trail_bytes(srv: Server) -> int:
    return sum(p.stat().st_size for p in trail_files(srv.data_dir / "audit"))


def test_unauthenticated_failures_are_bounded_and_rate_limited(srv):
    """60 requests with an unknown access key and an 8 KB Host header from one client.
    Before: each wrote (and fsynced) a ~12 KB record, 60 records. Now: 10 records of at most
    1.5 KB each (Host and userAgent cut to 256 bytes), then only a count for the summary."""
    host = "h" * 8000
    before = _trail_bytes(srv)
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = {"Host": host, "X-Amz-Date": amz_date,
               "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD",
               "Authorization": f"AWS4-HMAC-SHA256 Credential=AKIANOBODY0000000000/"
                                f"{amz_date[:8]}/us-east-1/s3/aws4_request, "
                                f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={'0' * 64}"}
    for _ in range(60):
        status, _, payload = raw_request(srv, "GET", "/some-bucket/k", headers,
                                  extra=((b"User-Agent", b"u" * 4000),))
        assert status == 403 and b"InvalidAccessKeyId" in payload
    grown = _trail_bytes(srv) - before
    recs = [r for r in read_trail(srv.data_dir / "audit")
            if r.get("errorCode") == "InvalidAccessKeyId"]
    assert len(recs) == 10
    for r in recs:
        line = json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode()
        assert len(line) < 1536, len(line)
        assert len(r["requestParameters"]["Host"].encode()) <= 256
        assert len(r["userAgent"].encode()) <= 256
    # Bytes per failed request: under 1.5 KB for the first 10 a minute per source, then 0
    # (one summary record per source and minute): here under 256 bytes a request on average.
    assert grown < 10 * 1536, grown
    assert grown / 60 < 256


def test_flood_summary_is_written_at_shutdown(tmp_path):
    s = start_server(tmp_path / "data")
    try:
        for _ in range(25):
            status, _, _ = raw_request(s, "PUT", "/b/k", {"Host": f"127.0.0.1:{s.port}"})
            assert status in (403, 404)              # anonymous, no such bucket: refused
    finally:
        s.stop()                                     # SIGTERM: the final digest flushes
    recs = read_trail(s.data_dir / "audit")
    full = [r for r in recs if r.get("errorCode") and r["eventSource"] == "s3.amazonaws.com"]
    summary = [r for r in recs if r.get("eventType") == "CofferSummary"]
    assert len(full) == 10
    assert len(summary) == 1
    assert summary[0]["additionalEventData"]["suppressedRequests"] == 15
    assert summary[0]["sourceIPAddress"] == "127.0.0.1"
    # Nothing was changed, so no intent was written for any of them.
    assert not [r for r in read_trail(s.data_dir / "audit", intents=True)
                if r.get("eventType") == "CofferIntent"
                and r["eventSource"] == "s3.amazonaws.com"]


def _coffer(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--data-dir",
                           str(data_dir)], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_retention_prunes_and_verify_still_passes(tmp_path):
    # 0.00003 days is 2.6 s: files whose newest record is older are pruned at each digest.
    s = start_server(tmp_path / "data", extra_args=["--audit-digest-interval", "0.5",
                                                    "--audit-retention-days", "0.00003"])
    audit = s.data_dir / "audit"
    try:
        s3 = make_client(s)
        s3.create_bucket(Bucket="kept")
        first = [p.name for p in trail_files(audit)]
        deadline = time.monotonic() + 30
        pruned: list[str] = []
        while time.monotonic() < deadline and not pruned:
            s3.list_buckets()                        # new records keep new files coming
            time.sleep(0.3)
            docs = [json.loads(p.read_bytes()) for p in (audit / "digests").glob("*.json")]
            pruned = [e["name"] for d in docs for e in d.get("prunedLogFiles") or []]
        assert pruned, "no trail file was pruned"
        assert set(first) & set(pruned)
    finally:
        s.stop()
    assert not set(pruned) & {p.name for p in trail_files(audit)}
    ok = _coffer(s.data_dir, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "pruned" in ok.stdout and "OK" in ok.stdout
    # A covered file deleted by hand (not pruned) is still tampering.
    covered = {e["name"] for p in (audit / "digests").glob("*.json")
               for e in json.loads(p.read_bytes())["logFiles"]}
    victim = next(p for p in trail_files(audit) if p.name in covered)
    victim.unlink()
    bad = _coffer(s.data_dir, "audit", "verify")
    assert bad.returncode == 1 and "deleted" in bad.stdout
