"""The audit trail on disk: rolling files, fail-closed writes, the signed digest chain and
`coffer audit verify` on an intact trail and on each tampering case."""
from __future__ import annotations

import json

import pytest

from gateway.audit_trail import KMSDigestSigner
from gateway.cli import main as cli
from kms.audit import (AuditEvent, AuditWriteError, FailOpenSink, TrailSink, read_trail,
                       trail_files)
from kms.audit.digest import digest_files, write_digest
from kms.audit.lookup import lookup_events
from kms.audit.verify import DELETED, MODIFIED, NOT_COVERED, VALID, verify_trail
from kms.crypto.verify_sig import verify_with_public_key
from kms.errors import KMSInternalException
from kms.model import Caller
from kms.service import KMS

ACCT = "111122223333"
ROOT = Caller(f"arn:aws:iam::{ACCT}:root", ACCT, request_id="req-1", access_key_id="AKIAROOT")


def _event(i: int, t: float = 1_700_000_000.0) -> AuditEvent:
    return AuditEvent(event_name="Decrypt", event_time=t + i, region="us-east-1",
                      event_id=f"id-{i:04d}", request_id=f"r{i}", read_only=True,
                      account_id=ACCT, principal_arn=ROOT.principal_arn,
                      request_parameters={"n": i, "pad": "x" * 200})


def test_rolls_by_size_and_keeps_order(tmp_path):
    sink = TrailSink(tmp_path, max_bytes=2000)
    for i in range(30):
        sink.emit(_event(i))
    sink.close()
    files = trail_files(tmp_path)
    assert len(files) > 3
    assert all(f.stat().st_size <= 2000 for f in files)
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in files)
    assert [r["eventID"] for r in read_trail(tmp_path)] == [f"id-{i:04d}" for i in range(30)]


def test_rolls_by_time(tmp_path):
    now = [1_700_000_000.0]
    sink = TrailSink(tmp_path, max_age=60, clock=lambda: now[0])
    sink.emit(_event(0))
    sink.emit(_event(1))
    now[0] += 61
    sink.emit(_event(2))
    sink.close()
    assert [len(f.read_bytes().splitlines()) for f in trail_files(tmp_path)] == [2, 1]


def test_s3_records_and_closed_sink(tmp_path):
    sink = TrailSink(tmp_path)
    sink.emit_record({"eventSource": "s3.amazonaws.com", "eventName": "GetObject"})
    # Encoding cannot fail (issue 11, finding 5): bytes are written as a note, never as bytes.
    sink.emit_record({"eventName": "Bytes", "bad": b"bytes never go in"})
    sink.close()
    with pytest.raises(AuditWriteError):
        sink.emit_record({"eventName": "late"})
    recs = read_trail(tmp_path)
    assert [r["eventName"] for r in recs] == ["GetObject", "Bytes"]
    assert recs[1]["bad"] == "[bytes omitted: 17]"
    assert b"bytes never go in" not in b"".join(p.read_bytes() for p in trail_files(tmp_path))


def test_kms_call_refused_when_trail_cannot_be_written(tmp_path):
    sink = TrailSink(tmp_path / "audit")
    with KMS.open(tmp_path, audit=sink) as kms:
        kid = kms.create_key(ROOT)["KeyMetadata"]["KeyId"]
        sink.close()                       # the trail is gone: every call is refused
        with pytest.raises(KMSInternalException):
            kms.encrypt(ROOT, kid, b"secret")


def test_fail_open_serves_and_logs(tmp_path, caplog):
    sink = TrailSink(tmp_path / "audit")
    with KMS.open(tmp_path, audit=FailOpenSink(sink)) as kms:
        kid = kms.create_key(ROOT)["KeyMetadata"]["KeyId"]
        sink.close()
        assert kms.encrypt(ROOT, kid, b"secret")["CiphertextBlob"]
    assert "AUDIT RECORD LOST" in caplog.text


# -- digests -------------------------------------------------------------------------------------

@pytest.fixture
def trail(tmp_path):
    """A data dir with three digests over several trail files, and a live KMS writing."""
    sink = TrailSink(tmp_path / "audit", max_bytes=5000)
    kms = KMS.open(tmp_path, audit=sink)
    signer = KMSDigestSigner(kms, tmp_path / "audit")
    kid = kms.create_key(ROOT)["KeyMetadata"]["KeyId"]
    for round_ in range(3):
        for i in range(6):
            kms.encrypt(ROOT, kid, b"plain", encryption_context={"round": str(round_),
                                                                  "i": str(i)})
        sink.roll()
        write_digest(tmp_path / "audit", signer)
    kms.close()
    return tmp_path


def _verify(data_dir, **kw):
    audit = data_dir / "audit"
    pem = (audit / "digest-public-key.pem").read_bytes()
    return verify_trail(audit, pem, verify_with_public_key, **kw)


def _status(report):
    return {f.name: f.status for f in report.files}, {f.name: f.status for f in report.digests}


def _covered(data_dir):
    names = []
    for d in digest_files(data_dir / "audit"):
        names += [f["name"] for f in json.loads(d.read_bytes())["logFiles"]]
    return names


def test_digest_chain_is_valid(trail):
    digests = digest_files(trail / "audit")
    assert len(digests) == 3
    docs = [json.loads(d.read_bytes()) for d in digests]
    assert docs[0]["previousDigestFile"] is None
    assert docs[1]["previousDigestFile"] == digests[0].name
    assert docs[2]["previousDigestSignature"] == docs[1]["digestSignature"]
    assert docs[0]["digestSignatureAlgorithm"] == "ECDSA_SHA_256"
    assert docs[0]["digestPublicKeyArn"].startswith("arn:aws:kms:us-east-1:000000000000:key/")
    for entry in docs[0]["logFiles"]:
        assert set(entry) >= {"name", "hashValue", "size", "oldestEventTime", "newestEventTime"}
    report = _verify(trail)
    assert report.ok
    files, dstat = _status(report)
    assert set(dstat.values()) == {VALID}
    assert sum(1 for s in files.values() if s == VALID) == len(_covered(trail)) >= 4
    assert cli(["audit", "verify", "--data-dir", str(trail)]) == 0


def test_byte_flipped(trail, capsys):
    victim = trail / "audit" / "trail" / _covered(trail)[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    files, _ = _status(_verify(trail))
    assert files[victim.name] == MODIFIED
    assert cli(["audit", "verify", "--data-dir", str(trail)]) == 1
    assert f"modified         {victim.name}" in capsys.readouterr().out


def test_file_deleted(trail):
    victim = trail / "audit" / "trail" / _covered(trail)[2]
    victim.unlink()
    files, _ = _status(_verify(trail))
    assert files[victim.name] == DELETED
    assert cli(["audit", "verify", "--data-dir", str(trail)]) == 1


def test_digest_deleted(trail):
    victim = digest_files(trail / "audit")[1]
    orphaned = [f["name"] for f in json.loads(victim.read_bytes())["logFiles"]]
    victim.unlink()
    files, dstat = _status(_verify(trail))
    assert dstat[victim.name] == DELETED
    assert all(files[n] == NOT_COVERED for n in orphaned)
    assert cli(["audit", "verify", "--data-dir", str(trail)]) == 1


def test_digest_modified(trail):
    victim = digest_files(trail / "audit")[0]
    doc = json.loads(victim.read_bytes())
    doc["logFiles"] = doc["logFiles"][1:]           # hide a file from the digest
    victim.write_text(json.dumps(doc))
    _, dstat = _status(_verify(trail))
    assert dstat[victim.name] == MODIFIED
    assert cli(["audit", "verify", "--data-dir", str(trail)]) == 1


def test_records_reordered(trail):
    victim = max((trail / "audit" / "trail" / n for n in _covered(trail)),
                 key=lambda p: len(p.read_bytes().splitlines()))
    lines = victim.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 2
    lines[0], lines[1] = lines[1], lines[0]
    victim.write_bytes(b"".join(lines))
    report = _verify(trail)
    bad = [f for f in report.files if f.name == victim.name]
    assert bad[0].status == MODIFIED and bad[0].detail == "records reordered"
    assert cli(["audit", "verify", "--data-dir", str(trail)]) == 1


def test_verify_with_only_the_public_key(trail, tmp_path_factory):
    """A copy of the audit dir without the KMS verifies; a foreign key does not."""
    import shutil
    copy = tmp_path_factory.mktemp("copy")
    shutil.copytree(trail / "audit", copy / "audit")
    assert not (copy / "kms").exists()
    assert cli(["audit", "verify", "--data-dir", str(copy)]) == 0
    other = tmp_path_factory.mktemp("other")
    with KMS.open(other) as kms:
        KMSDigestSigner(kms, other / "audit")
    assert cli(["audit", "verify", "--data-dir", str(copy), "--public-key",
                str(other / "audit" / "digest-public-key.pem")]) == 1


def test_time_range(trail):
    docs = [json.loads(d.read_bytes()) for d in digest_files(trail / "audit")]
    report = _verify(trail, start="2000-01-01T00:00:00Z", end="2000-01-02T00:00:00Z")
    assert report.files == [] and report.digests == []
    report = _verify(trail, start=docs[0]["digestStartTime"], end=docs[-1]["digestEndTime"])
    assert report.ok and report.digests


def test_active_file_is_left_for_the_next_digest(tmp_path):
    sink = TrailSink(tmp_path / "audit")
    with KMS.open(tmp_path, audit=sink) as kms:
        signer = KMSDigestSigner(kms, tmp_path / "audit")
        kms.create_key(ROOT)
        active = sink.active_name
        path = write_digest(tmp_path / "audit", signer)     # no roll: the file is in use
        assert active not in [f["name"] for f in json.loads(path.read_bytes())["logFiles"]]
        files, _ = _status(_verify(tmp_path))
        assert files[active] == NOT_COVERED


def test_lookup_filters_and_pages(tmp_path):
    sink = TrailSink(tmp_path)
    for i in range(7):
        sink.emit(_event(i))
    sink.emit_record({"eventName": "GetObject", "eventSource": "s3.amazonaws.com",
                      "eventTime": "2023-11-14T22:13:30Z", "eventID": "s3-1",
                      "readOnly": True, "recipientAccountId": ACCT,
                      "userIdentity": {"type": "IAMUser", "userName": "bob", "accountId": ACCT,
                                       "accessKeyId": "AKIABOB"},
                      "resources": [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::b/k"}]})
    sink.close()
    page, token = lookup_events(tmp_path, attributes=[("EventName", "Decrypt")], max_results=3)
    seen = [r["eventID"] for r in page]
    while token:
        page, token = lookup_events(tmp_path, attributes=[("EventName", "Decrypt")],
                                    max_results=3, next_token=token)
        seen += [r["eventID"] for r in page]
    assert seen == [f"id-{i:04d}" for i in reversed(range(7))]
    assert [r["eventID"] for r in lookup_events(tmp_path, attributes=[("Username", "bob")])[0]] \
        == ["s3-1"]
    assert lookup_events(tmp_path, attributes=[("ResourceName", "b/k")])[0][0]["eventID"] == "s3-1"
    assert lookup_events(tmp_path, attributes=[("AccessKeyId", "AKIABOB")])[0]
    assert len(lookup_events(tmp_path, start=1_700_000_003, end=1_700_000_005)[0]) == 3
    assert lookup_events(tmp_path, account="999999999999")[0] == []
