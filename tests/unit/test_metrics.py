"""gateway.metrics without a server: bounded labels, the audit sink's failure count."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics, RequestSample, TimedSink, bounded_api, bounded_operation
from kms.audit import AuditWriteError
from kms.audit.sinks import MemorySink


def _samples(metrics: Metrics) -> list:
    return [s for fam in text_string_to_metric_families(metrics.render().decode())
            for s in fam.samples]


def test_label_values_come_from_the_operation_tables():
    assert bounded_operation("s3", "PutObject") == "PutObject"
    assert bounded_operation("kms", "GenerateDataKey") == "GenerateDataKey"
    assert bounded_operation("iam", "CreateUser") == "CreateUser"
    assert bounded_operation("sts", "GetCallerIdentity") == "GetCallerIdentity"
    assert bounded_operation("cloudtrail", "LookupEvents") == "LookupEvents"
    for forged in ("my-bucket", "PutObject\n", "arn:aws:iam::111122223333:root", "CreateUser"):
        assert bounded_operation("s3", forged) == "other"
    assert bounded_operation("s3", None) == "none"
    assert bounded_api("s3") == "s3" and bounded_api("evil") == "other"
    assert bounded_api(None) == "none"


def test_requests_with_forged_names_share_one_series():
    metrics = Metrics()
    for i in range(50):
        metrics.observe_request(RequestSample(api=f"svc{i}", operation=f"bucket-{i}",
                                              status=200 + i, seconds=0.01, bytes_in=1,
                                              bytes_out=2))
    series = {tuple(sorted(s.labels.items())) for s in _samples(metrics)
              if s.name == "coffer_requests_total"}
    assert {dict(k)["api"] for k in series} == {"other"}
    assert {dict(k)["operation"] for k in series} == {"other"}


def test_kms_observer_bounds_spec_and_error():
    metrics = Metrics()
    metrics.observe_kms_call("Decrypt", "SYMMETRIC_DEFAULT", "InvalidCiphertextException")
    metrics.observe_kms_call("Forged", "NOT_A_SPEC", "MadeUpException")
    got = {(s.labels["operation"], s.labels["key_spec"], s.labels["error"]): s.value
           for s in _samples(metrics) if s.name == "coffer_kms_calls_total"}
    assert got == {("Decrypt", "SYMMETRIC_DEFAULT", "InvalidCiphertextException"): 1.0,
                   ("other", "none", "other"): 1.0}


def test_timed_sink_counts_failed_audit_writes_and_reraises():
    metrics = Metrics()
    inner = MemorySink()
    sink = TimedSink(inner, metrics)
    sink.emit_record({"eventSource": "s3.amazonaws.com", "eventName": "PutObject"})
    inner.fail = True
    with pytest.raises(AuditWriteError):
        sink.emit_record({"eventSource": "s3.amazonaws.com", "eventName": "PutObject"})
    samples = _samples(metrics)
    failures = [s for s in samples if s.name == "coffer_audit_write_failures_total"]
    assert [(s.labels, s.value) for s in failures] == [({"source": "s3"}, 1.0)]
    count = [s for s in samples if s.name == "coffer_audit_write_duration_seconds_count"]
    assert [(s.labels, s.value) for s in count] == [({"source": "s3"}, 2.0)]
    sink.sync()      # everything else is the inner sink's (roll, sync, close)
