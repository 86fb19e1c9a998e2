"""Audit trail: CloudTrail-shaped events and the sinks that persist them (a leaf package)."""
from kms.audit.events import AuditEvent
from kms.audit.sinks import (AuditSink, AuditWriteError, FailOpenSink, JSONLinesSink, MemorySink,
                             TrailSink, read_trail, trail_files)

__all__ = ["AuditEvent", "AuditSink", "AuditWriteError", "FailOpenSink", "JSONLinesSink",
           "MemorySink", "TrailSink", "read_trail", "trail_files"]
