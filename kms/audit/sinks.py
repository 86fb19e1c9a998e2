"""Audit sinks. A KMS call returns only after its record is durable (fail-closed).

``JSONLinesSink`` appends one JSON object per line to ``<data_dir>/audit/kms-events.jsonl``
(mode 0600, ``O_APPEND`` so each record is one ``write``). Durability uses group commit:
a writer appends under a lock, then fsyncs unless another thread's fsync already covered its
record, so N concurrent calls share one fsync instead of queueing N of them.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kms.audit.events import AuditEvent

__all__ = ["AuditSink", "AuditWriteError", "JSONLinesSink", "MemorySink"]


class AuditWriteError(Exception):
    """The record could not be made durable; the audited call must fail."""


@runtime_checkable
class AuditSink(Protocol):
    """Persists events. ``emit`` returns only when the event is durable, else raises
    ``AuditWriteError``. Thread-safe."""

    def emit(self, event: AuditEvent) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps records in a list (tests)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.fail = False

    def emit(self, event: AuditEvent) -> None:
        if self.fail:
            raise AuditWriteError("memory sink set to fail")
        rec = json.loads(json.dumps(event.to_record()))
        with self._lock:
            self.records.append(rec)

    def close(self) -> None:
        pass


class JSONLinesSink:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._fsync = fsync
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = 0
        self._synced = 0

    def emit(self, event: AuditEvent) -> None:
        try:
            line = (json.dumps(event.to_record(), separators=(",", ":"), ensure_ascii=False)
                    + "\n").encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise AuditWriteError(f"unserializable audit event: {exc}") from None
        try:
            with self._write_lock:
                if self._fd < 0:
                    raise AuditWriteError("audit sink is closed")
                n = os.write(self._fd, line)
                if n != len(line):
                    raise AuditWriteError("short write to the audit log")
                self._written += 1
                mine = self._written
            if not self._fsync:
                return
            with self._sync_lock:
                if self._synced >= mine:
                    return
                target = self._written
                os.fdatasync(self._fd)
                self._synced = target
        except OSError as exc:
            raise AuditWriteError(f"audit log write failed: {exc.strerror}") from None

    def close(self) -> None:
        with self._write_lock, self._sync_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
