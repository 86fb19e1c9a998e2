"""Issue 15, observability: Prometheus metrics on their own listener, the access log, /ready.

A real ``coffer serve`` per module; its stdout and stderr go to ``Server.log``
(tests/wire/server.py), which is where the access log is read back from.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import stat
import time
import uuid

import pytest
import requests
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import build_parser
from tests.wire.clients import error_code
from tests.wire.conftest import make_client
from tests.wire.server import SECRET_KEY, free_port, start_server

TOKEN = "obs-test-token-" + "9" * 24


@pytest.fixture(scope="module")
def metrics_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("coffer-metrics")
    token_file = base / "metrics.token"
    token_file.write_text(TOKEN + "\n")
    mport = free_port()
    srv = start_server(base / "data", extra_args=[
        "--metrics-port", str(mport), "--metrics-token-file", str(token_file),
        "--log-format", "json", "--default-encryption", "none", "--sse-c-allow-http"])
    srv.metrics_url = f"http://127.0.0.1:{mport}/metrics"
    yield srv
    srv.stop()


def _scrape(srv, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(srv.metrics_url, headers=headers, timeout=30)


def _samples(text: str) -> list:
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def _value(samples, name: str, **labels) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(s.value for s in samples if s.name == name
               and all(s.labels.get(k) == v for k, v in labels.items()))


def _log_records(srv) -> list[dict]:
    out = []
    for line in srv.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))      # every JSON-format line parses
    return out


def _wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_metrics_count_requests_kms_calls_cache_audit_and_storage(metrics_server):
    srv = metrics_server
    s3, kms, iam, sts = (make_client(srv, svc) for svc in ("s3", "kms", "iam", "sts"))
    bucket = f"metrics-{uuid.uuid4().hex[:8]}"
    secret_key = f"private/{uuid.uuid4().hex}.txt"
    s3.create_bucket(Bucket=bucket)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    body = b"m" * 5000
    for i in range(2):   # the second PUT reuses the Bucket Key the first one made
        s3.put_object(Bucket=bucket, Key=f"kms-{i}", Body=body, ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key_id, BucketKeyEnabled=True)
    s3.put_object(Bucket=bucket, Key=secret_key, Body=b"plain")      # stored unencrypted
    assert s3.get_object(Bucket=bucket, Key="kms-0")["Body"].read() == body
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId="alias/does-not-exist", Plaintext=b"x")
    assert error_code(exc) == "NotFoundException"
    iam.list_users()
    sts.get_caller_identity()

    first = _scrape(srv)
    assert first.status_code == 200
    assert first.headers["Content-Type"].startswith("text/plain")
    samples = _samples(first.text)
    assert _value(samples, "coffer_requests_total", api="s3", operation="PutObject",
                  code="200") >= 3
    assert _value(samples, "coffer_requests_total", api="s3", operation="CreateBucket") >= 1
    assert _value(samples, "coffer_requests_total", api="kms", operation="CreateKey",
                  code="200") >= 1
    assert _value(samples, "coffer_requests_total", api="kms", operation="Encrypt",
                  code="400") >= 1
    assert _value(samples, "coffer_requests_total", api="iam", operation="ListUsers") >= 1
    assert _value(samples, "coffer_requests_total", api="sts",
                  operation="GetCallerIdentity") >= 1
    assert _value(samples, "coffer_request_duration_seconds_count", api="s3",
                  operation="PutObject") >= 3
    assert _value(samples, "coffer_request_duration_seconds_bucket", api="s3",
                  operation="PutObject", le="+Inf") >= 3
    assert _value(samples, "coffer_request_bytes_total", api="s3",
                  operation="PutObject") >= 2 * len(body)
    assert _value(samples, "coffer_response_bytes_total", api="s3",
                  operation="GetObject") >= len(body)
    # KMS calls by operation, key spec and error, the S3 SSE path's included.
    assert _value(samples, "coffer_kms_calls_total", operation="GenerateDataKey",
                  key_spec="SYMMETRIC_DEFAULT", error="none") >= 1
    assert _value(samples, "coffer_kms_calls_total", operation="Encrypt",
                  error="NotFoundException") >= 1
    assert _value(samples, "coffer_bucket_key_cache_misses_total", use="generate") >= 1
    assert _value(samples, "coffer_bucket_key_cache_hits_total", use="generate") >= 1
    assert _value(samples, "coffer_audit_write_duration_seconds_count", source="s3") >= 3
    assert _value(samples, "coffer_audit_write_duration_seconds_count", source="kms") >= 1
    assert "# TYPE coffer_audit_write_failures_total counter" in first.text
    # Objects and bytes by SSE mode, from the encryption-report scanner.
    assert _value(samples, "coffer_stored_objects", mode="aws:kms") >= 2
    assert _value(samples, "coffer_stored_bytes", mode="aws:kms") >= 2 * len(body)
    assert _value(samples, "coffer_stored_unencrypted_objects") >= 1
    assert _value(samples, "coffer_storage_scan_timestamp_seconds") > 0

    # Bounded labels only: no bucket name, key, account id or ARN in any label value.
    account = sts.get_caller_identity()["Account"]
    for s in samples:
        for value in s.labels.values():
            assert bucket not in value and secret_key not in value, s
            assert account not in value and "arn:" not in value and key_id not in value, s

    # Counters move with traffic.
    before = _value(samples, "coffer_requests_total", api="s3", operation="HeadObject",
                    code="200")
    for _ in range(3):
        s3.head_object(Bucket=bucket, Key="kms-1")
    after = _value(_samples(_scrape(srv).text), "coffer_requests_total", api="s3",
                   operation="HeadObject", code="200")
    assert after == before + 3


def test_metrics_want_the_bearer_token(metrics_server):
    assert _scrape(metrics_server, token=None).status_code == 401
    assert _scrape(metrics_server, token="wrong").status_code == 401
    r = requests.get(metrics_server.metrics_url, timeout=10,
                     headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401 and "coffer_" not in r.text
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert _scrape(metrics_server).status_code == 200


def test_the_s3_port_has_no_metrics(metrics_server):
    r = requests.get(f"{metrics_server.endpoint}/metrics", timeout=10)
    assert r.status_code != 200
    assert "coffer_requests" not in r.text and "# TYPE" not in r.text
    r = requests.get(f"{metrics_server.endpoint}/metrics",
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert "coffer_requests" not in r.text


def test_metrics_are_off_by_default():
    args = build_parser().parse_args(["serve"])
    assert args.metrics_port is None and args.metrics_host == "127.0.0.1"
    assert args.log_format == "text"


def test_access_log_json_line_per_request(metrics_server):
    srv = metrics_server
    s3 = make_client(srv)
    bucket = f"log-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    key = 'dir/a\nb"c\u00e9'      # a newline and a quote must stay escaped on one line
    body = b"x" * 1234
    rid = s3.put_object(Bucket=bucket, Key=key, Body=body)["ResponseMetadata"]["RequestId"]
    customer_key = os.urandom(32)
    s3.put_object(Bucket=bucket, Key="ssec", Body=b"c", SSECustomerAlgorithm="AES256",
                  SSECustomerKey=customer_key)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="missing")
    missing_rid = exc.value.response["ResponseMetadata"]["RequestId"]

    records = _wait_for(lambda: [r for r in _log_records(srv) if r.get("requestId") == rid])
    assert len(records) == 1, records
    rec = records[0]
    assert rec["logger"] == "coffer.access" and rec["api"] == "s3"
    assert rec["operation"] == "PutObject" and rec["status"] == 200
    assert rec["bucket"] == bucket and rec["key"] == key
    assert rec["principal"].startswith("arn:aws:iam::") and rec["principal"].endswith(":root")
    assert rec["errorCode"] is None
    assert rec["bytesIn"] >= len(body) and rec["durationMs"] >= 0

    [miss] = _wait_for(lambda: [r for r in _log_records(srv)
                                if r.get("requestId") == missing_rid])
    assert miss["status"] == 404 and miss["errorCode"] == "NoSuchKey"
    assert miss["operation"] == "GetObject" and miss["key"] == "missing"

    text = srv.log.read_text(errors="replace")
    assert SECRET_KEY not in text
    assert base64.b64encode(customer_key).decode() not in text
    for marker in ("Signature=", "Credential=", "AWS4-HMAC-SHA256", "X-Amz-Signature"):
        assert marker not in text, marker


def test_parser_rejection_is_one_short_line(metrics_server):
    srv = metrics_server
    before = len(srv.log.read_text(errors="replace").splitlines())
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST LINE SECRET-MARKER-1234\r\n\r\n")
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.") and reply.split(b" ", 2)[1] == b"400", reply
    lines = _wait_for(lambda: srv.log.read_text(errors="replace").splitlines()[before:])
    new = "\n".join(lines)
    assert "Traceback" not in new and "SECRET-MARKER" not in new
    rejected = [json.loads(line) for line in lines if '"rejected"' in line]
    assert len(rejected) == 1, new
    assert rejected[0]["status"] == 400 and rejected[0]["errorCode"] == "BadRequest"
    assert len(lines) == 1, new


# -- /ready, and the text access log -----------------------------------------------------------

def _unprivileged() -> list[str]:
    """As root, file modes bind only a process without CAP_DAC_OVERRIDE: run the server
    without it, so a chmod really makes a directory read-only for it."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture(scope="module")
def ready_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("coffer-ready") / "data", prefix=_unprivileged())
    yield srv
    srv.stop()


def test_ready_names_an_unwritable_audit_trail(ready_server):
    srv = ready_server
    r = requests.get(f"{srv.endpoint}/ready", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ready"}
    trail = srv.data_dir / "audit" / "trail"
    mode = stat.S_IMODE(trail.stat().st_mode)
    trail.chmod(0o500)
    try:
        r = requests.get(f"{srv.endpoint}/ready", timeout=10)
        assert r.status_code == 503, r.text
        doc = r.json()
        assert doc["status"] == "not ready"
        assert set(doc["failed"]) == {"audit_trail"}, doc
        assert "ermission" in doc["failed"]["audit_trail"]
        # Alive all the same: /health is liveness only.
        assert requests.get(f"{srv.endpoint}/health", timeout=10).status_code == 200
    finally:
        trail.chmod(mode)
    r = requests.get(f"{srv.endpoint}/ready", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ready"}


def test_ready_names_an_unwritable_data_dir(ready_server):
    srv = ready_server
    objects = srv.data_dir / "s3" / "staging"
    mode = stat.S_IMODE(objects.stat().st_mode)
    objects.chmod(0o500)
    try:
        r = requests.get(f"{srv.endpoint}/ready", timeout=10)
        assert r.status_code == 503 and set(r.json()["failed"]) == {"data_dir"}, r.text
    finally:
        objects.chmod(mode)


def test_ready_is_unsigned_and_logged_in_text(ready_server):
    srv = ready_server
    r = requests.get(f"{srv.endpoint}/ready", timeout=10)
    rid = r.headers["x-amz-request-id"]
    line = _wait_for(lambda: [ln for ln in srv.log.read_text().splitlines()
                              if f"rid={rid}" in ln])
    assert len(line) == 1 and " coffer.access access " in line[0], line
    assert "status=200" in line[0] and "principal=-" in line[0]
    s3 = make_client(srv)
    bucket = f"txt-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    rid = s3.put_object(Bucket=bucket, Key="k\nv", Body=b"1")["ResponseMetadata"]["RequestId"]
    [line] = _wait_for(lambda: [ln for ln in srv.log.read_text().splitlines()
                                if f"rid={rid}" in ln])
    assert "op=PutObject" in line and f'bucket="{bucket}"' in line and 'key="k\\nv"' in line


def test_client_claims_never_reach_the_log_verbatim(metrics_server):
    """The signed service and X-Amz-Target are the client's: logged only as table values."""
    srv = metrics_server
    auth = ("AWS4-HMAC-SHA256 Credential=AKIAX/20260101/us-east-1/evil op=Forged/aws4_request, "
            "SignedHeaders=host, Signature=00")
    r = requests.get(f"{srv.endpoint}/", headers={"Authorization": auth}, timeout=10)
    kms_auth = auth.replace("evil op=Forged", "kms")
    r2 = requests.post(f"{srv.endpoint}/", data=b"{}", timeout=10, headers={
        "Authorization": kms_auth, "X-Amz-Target": "TrentService.Forged status=200",
        "Content-Type": "application/x-amz-json-1.1"})
    rids = {r.headers["x-amz-request-id"]: "other", r2.headers["x-amz-request-id"]: "kms"}
    recs = _wait_for(lambda: [x for x in _log_records(srv) if x.get("requestId") in rids]
                     if len([x for x in _log_records(srv) if x.get("requestId") in rids]) == 2
                     else None)
    for rec in recs:
        assert rec["api"] == rids[rec["requestId"]], rec
        assert rec["operation"] in (None, "other"), rec
    assert "Forged" not in srv.log.read_text(errors="replace")
