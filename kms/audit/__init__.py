"""Audit trail: CloudTrail-shaped events and the sinks that persist them (a leaf package)."""
from kms.audit.events import AuditEvent
from kms.audit.sinks import AuditSink, AuditWriteError, JSONLinesSink, MemorySink

__all__ = ["AuditEvent", "AuditSink", "AuditWriteError", "JSONLinesSink", "MemorySink"]
