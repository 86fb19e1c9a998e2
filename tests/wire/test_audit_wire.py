"""The audit trail over the wire: S3, IAM and KMS calls produce exactly the expected
CloudTrail records (linked by requestID, invokedBy s3.amazonaws.com), no secret reaches any
audit file, `aws cloudtrail lookup-events` finds them, the key-usage report answers "is this key
still used?", and a SIGTERM'd server leaves a verifiable, signed digest."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from kms.audit import read_trail
from tests.wire.clients import AWS
from tests.wire.conftest import make_client
from tests.wire.server import ACCESS_KEY, SECRET_KEY, Server, start_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Server:
    s = start_server(tmp_path_factory.mktemp("audit") / "data")
    yield s
    s.stop()


def records(srv: Server) -> list[dict]:
    return read_trail(srv.data_dir / "audit")


def linked(srv: Server, request_id: str) -> list[tuple[str, str]]:
    return [(r["eventSource"], r["eventName"]) for r in records(srv)
            if r["requestID"] == request_id]


def coffer(srv: Server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--data-dir",
                           str(srv.data_dir)], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_s3_requests_link_to_their_kms_calls(srv):
    s3, kms = make_client(srv), make_client(srv, "kms")
    key = kms.create_key(Description="audit-linked")["KeyMetadata"]
    bucket = f"audit-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = b"the object body 0123456789"
    put = s3.put_object(Bucket=bucket, Key="dir/obj.txt", Body=body,
                        ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    put_id = put["ResponseMetadata"]["RequestId"]
    got = s3.get_object(Bucket=bucket, Key="dir/obj.txt")
    assert got["Body"].read() == body
    get_id = got["ResponseMetadata"]["RequestId"]

    assert linked(srv, put_id) == [("kms.amazonaws.com", "GenerateDataKey"),
                                   ("s3.amazonaws.com", "PutObject")]
    assert linked(srv, get_id) == [("kms.amazonaws.com", "Decrypt"),
                                   ("s3.amazonaws.com", "GetObject")]
    recs = {(r["requestID"], r["eventName"]): r for r in records(srv)}
    gdk, put_rec = recs[(put_id, "GenerateDataKey")], recs[(put_id, "PutObject")]
    dec, get_rec = recs[(get_id, "Decrypt")], recs[(get_id, "GetObject")]
    acct = key["AWSAccountId"]
    for r in (gdk, dec):
        assert r["userIdentity"] == {"type": "Root", "principalId": acct,
                                     "arn": f"arn:aws:iam::{acct}:root", "accountId": acct,
                                     "accessKeyId": ACCESS_KEY, "invokedBy": "s3.amazonaws.com"}
        assert r["requestParameters"]["encryptionContext"] == {
            "aws:s3:arn": f"arn:aws:s3:::{bucket}/dir/obj.txt"}
        assert r["resources"] == [{"accountId": acct, "type": "AWS::KMS::Key",
                                   "ARN": key["Arn"]}]
        assert r["responseElements"] is None and r["eventType"] == "AwsApiCall"
    for r, read_only in ((put_rec, False), (get_rec, True)):
        assert r["eventSource"] == "s3.amazonaws.com"
        assert r["userIdentity"]["arn"] == f"arn:aws:iam::{acct}:root"
        assert r["userIdentity"]["accessKeyId"] == ACCESS_KEY
        assert r["requestParameters"]["bucketName"] == bucket
        assert r["requestParameters"]["key"] == "dir/obj.txt"
        assert r["resources"][0] == {"type": "AWS::S3::Object",
                                     "ARN": f"arn:aws:s3:::{bucket}/dir/obj.txt"}
        assert (r["readOnly"], r["managementEvent"], r["eventCategory"]) == (
            read_only, False, "Data")
        assert r["recipientAccountId"] == acct and r["eventID"] and r["eventTime"]
    assert put_rec["additionalEventData"]["bytesTransferredIn"] == len(body)
    assert get_rec["additionalEventData"]["bytesTransferredOut"] == len(body)
    mgmt = [r for r in records(srv) if r["eventName"] == "CreateBucket"
            and r["requestParameters"].get("bucketName") == bucket]
    assert len(mgmt) == 1 and mgmt[0]["managementEvent"] is True
    # A failed S3 request is recorded with its error.
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="missing")
    miss = [r for r in records(srv) if r["requestParameters"] and
            r["requestParameters"].get("key") == "missing"]
    assert len(miss) == 1 and miss[0]["errorCode"] == "NoSuchKey"


def test_iam_calls_and_user_identity(srv):
    iam = make_client(srv, "iam")
    name = f"auditor-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*",
                                                "Resource": "*"}]}))
    ak = iam.create_access_key(UserName=name)["AccessKey"]
    iam_recs = [r for r in records(srv) if r["eventSource"] == "iam.amazonaws.com"
                and (r["requestParameters"] or {}).get("userName") == name]
    assert [r["eventName"] for r in iam_recs] == ["CreateUser", "PutUserPolicy",
                                                 "CreateAccessKey"]
    assert all(r["managementEvent"] and r["userIdentity"]["type"] == "Root" for r in iam_recs)
    user_srv = Server(endpoint=srv.endpoint, data_dir=srv.data_dir, proc=srv.proc,
                      access_key=ak["AccessKeyId"], secret_key=ak["SecretAccessKey"])
    kms = make_client(user_srv, "kms")
    out = kms.generate_random(NumberOfBytes=16)
    rid = out["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    rec = [r for r in records(srv) if r["requestID"] == rid]
    assert len(rec) == 1
    ident = rec[0]["userIdentity"]
    assert (ident["type"], ident["userName"], ident["accessKeyId"]) == (
        "IAMUser", name, ak["AccessKeyId"])
    blob = json.dumps(records(srv))
    assert ak["SecretAccessKey"] not in blob


def test_no_secret_in_any_audit_file(srv):
    s3, kms = make_client(srv), make_client(srv, "kms")
    key = kms.create_key()["KeyMetadata"]
    dk = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    plain = b"known plaintext that must never be logged 42"
    ct = kms.encrypt(KeyId=key["KeyId"], Plaintext=plain)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == plain
    grant = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::"
                             f"{key['AWSAccountId']}:root", Operations=["Decrypt"])
    bucket = f"sec-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = b"object plaintext never in the trail 0xDEADBEEF"
    s3.put_object(Bucket=bucket, Key="k", Body=body, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["Arn"])
    s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    secrets = [plain, body, dk["Plaintext"], dk["CiphertextBlob"], ct,
               SECRET_KEY.encode(), grant["GrantToken"].encode()]
    files = [p for p in (srv.data_dir / "audit").rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files)
    for path in files:
        data = path.read_bytes()
        for s in secrets:
            for form in (s, base64.b64encode(s), s.hex().encode()):
                assert form not in data, (path, s[:16])


def test_lookup_events_through_the_aws_cli(srv):
    s3, kms = make_client(srv), make_client(srv, "kms")
    key = kms.create_key()["KeyMetadata"]
    bucket = f"look-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="x", Body=b"1", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["Arn"])
    rid = s3.get_object(Bucket=bucket, Key="x")["ResponseMetadata"]["RequestId"]
    env = srv.client_env()
    proc = subprocess.run([AWS, "--endpoint-url", srv.endpoint, "cloudtrail", "lookup-events",
                           "--lookup-attributes", "AttributeKey=EventName,AttributeValue=Decrypt",
                           "--output", "json"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    events = json.loads(proc.stdout)["Events"]
    assert events and all(e["EventName"] == "Decrypt" for e in events)
    trail_events = [json.loads(e["CloudTrailEvent"]) for e in events]
    assert rid in [t["requestID"] for t in trail_events]
    assert all(e["EventSource"] == "kms.amazonaws.com" and e["ReadOnly"] == "true"
               for e in events)
    ct = make_client(srv, "cloudtrail")
    pages = list(ct.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": key["Arn"]}],
        PaginationConfig={"PageSize": 1}))
    names = [e["EventName"] for p in pages for e in p["Events"]]
    assert len(pages) >= 3 and names[-1] == "CreateKey" and "GenerateDataKey" in names
    mine = ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventSource",
                                               "AttributeValue": "s3.amazonaws.com"}],
                            MaxResults=5)["Events"]
    assert mine and all(e["EventSource"] == "s3.amazonaws.com" for e in mine)
    with pytest.raises(ClientError) as exc:
        ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "a"},
                                           {"AttributeKey": "ReadOnly", "AttributeValue": "true"}])
    assert exc.value.response["Error"]["Code"] == "InvalidLookupAttributesException"
    # The CLI for humans.
    out = coffer(srv, "audit", "lookup", "--event-name", "Decrypt", "--json")
    assert out.returncode == 0 and rid in out.stdout
    out = coffer(srv, "audit", "tail", "-n", "5")
    assert out.returncode == 0 and "REQUEST ID" in out.stdout


def _usage(srv: Server, key: str) -> dict:
    out = coffer(srv, "kms", "key-usage", key, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_key_usage_report_two_keys_and_rotation(srv):
    s3, kms = make_client(srv), make_client(srv, "kms")
    a = kms.create_key(Description="usage-a")["KeyMetadata"]
    b = kms.create_key(Description="usage-b")["KeyMetadata"]
    bucket = f"use-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for name, key, size in (("a1", a, 10), ("a2", a, 20), ("b1", b, 7)):
        s3.put_object(Bucket=bucket, Key=name, Body=b"x" * size, ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key["Arn"])
    ra, rb = _usage(srv, a["Arn"]), _usage(srv, b["KeyId"])
    assert ra["stillUsed"] and ra["objects"]["count"] == 2 and ra["objects"]["bytes"] == 30
    assert ra["objects"]["byBucket"][0]["bucket"] == bucket
    assert sorted(ra["unreadableIfDeleted"]) == [f"{bucket}/a1", f"{bucket}/a2"]
    assert rb["objects"]["count"] == 1 and rb["unreadableIfDeleted"] == [f"{bucket}/b1"]
    gdk = [u for u in ra["lastUse"] if u["operation"] == "GenerateDataKey"]
    assert gdk[0]["count"] == 2 and gdk[0]["invokedBy"] == "s3.amazonaws.com"
    # Rotation: old objects stay under the key (same ARN), new writes add to it.
    kms.rotate_key_on_demand(KeyId=a["KeyId"])
    s3.put_object(Bucket=bucket, Key="a3", Body=b"y" * 5, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=a["Arn"])
    s3.get_object(Bucket=bucket, Key="a1")["Body"].read()
    ra2 = _usage(srv, a["Arn"])
    assert ra2["objects"]["count"] == 3 and ra2["objects"]["bytes"] == 35
    assert ra2["objects"]["byBucket"][0]["newestWrite"] >= ra["objects"]["byBucket"][0][
        "newestWrite"]
    assert {u["operation"] for u in ra2["lastUse"]} >= {"GenerateDataKey", "Decrypt"}
    assert _usage(srv, b["Arn"])["objects"]["count"] == 1
    # Attempted use while disabled.
    kms.disable_key(KeyId=b["KeyId"])
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="b1")
    rb2 = _usage(srv, b["Arn"])
    assert [(x["eventName"], x["errorCode"], x["invokedBy"]) for x in
            rb2["attemptsWhileUnusable"]] == [("Decrypt", "DisabledException",
                                               "s3.amazonaws.com")]
    # ScheduleKeyDeletion on a key that still protects objects: succeeds, with a warning.
    raw = []
    kms.meta.events.register("after-call.kms.ScheduleKeyDeletion",
                             lambda http_response, **kw: raw.append(http_response.content))
    out = kms.schedule_key_deletion(KeyId=a["KeyId"], PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion"
    warning = json.loads(raw[0])["Warning"]
    assert "3 object(s)" in warning and bucket in warning
    rec = [r for r in records(srv) if r["eventName"] == "ScheduleKeyDeletion"
           and r["resources"][0]["ARN"] == a["Arn"]]
    assert rec[-1]["responseElements"]["warning"] == warning
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="a2")
    ra3 = _usage(srv, a["Arn"])
    assert ra3["keyState"] == "PendingDeletion"
    assert [x["errorCode"] for x in ra3["attemptsWhileUnusable"]] == ["KMSInvalidStateException"]
    assert len(ra3["unreadableIfDeleted"]) == 3
    # A key that protects nothing: no warning.
    c = kms.create_key()["KeyMetadata"]
    raw.clear()
    kms.schedule_key_deletion(KeyId=c["KeyId"], PendingWindowInDays=7)
    assert "Warning" not in json.loads(raw[0])


def test_sigterm_writes_a_verifiable_digest(tmp_path):
    s = start_server(tmp_path / "data")
    try:
        s3 = make_client(s)
        s3.create_bucket(Bucket="digested")
        s3.put_object(Bucket="digested", Key="k", Body=b"v")
    finally:
        s.stop()                                  # SIGTERM: clean shutdown writes a digest
    digests = list((s.data_dir / "audit" / "digests").glob("*.json"))
    assert len(digests) == 1
    assert (s.data_dir / "audit" / "digest-public-key.pem").exists()
    ok = coffer(s, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "valid" in ok.stdout and "OK" in ok.stdout
    on_demand = coffer(s, "audit", "digest")
    assert on_demand.returncode == 0, on_demand.stderr
    assert len(list((s.data_dir / "audit" / "digests").glob("*.json"))) == 2
    assert coffer(s, "audit", "verify").returncode == 0
    doc = json.loads(sorted(digests)[0].read_bytes())
    victim = s.data_dir / "audit" / "trail" / doc["logFiles"][0]["name"]
    data = bytearray(victim.read_bytes())
    data[10] ^= 0x20
    victim.write_bytes(bytes(data))
    bad = coffer(s, "audit", "verify")
    assert bad.returncode == 1 and "modified" in bad.stdout


def test_periodic_digest(tmp_path):
    s = start_server(tmp_path / "data", extra_args=["--audit-digest-interval", "0.5"])
    try:
        make_client(s).list_buckets()
        import time
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if len(list((s.data_dir / "audit" / "digests").glob("*.json"))) >= 2:
                break
            time.sleep(0.2)
        assert len(list((s.data_dir / "audit" / "digests").glob("*.json"))) >= 2
    finally:
        s.stop()
    assert coffer(s, "audit", "verify").returncode == 0


def test_s3_records_carry_the_authorization_decision(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="decided", Body=b"x")
    recs = [r for r in records(server) if r.get("eventName") == "PutObject"
            and (r.get("requestParameters") or {}).get("key") == "decided"]
    assert recs and recs[-1]["authorizationDecision"]["allowed"] is True
    assert recs[-1]["authorizationDecision"]["reason"]
