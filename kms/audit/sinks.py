"""Audit sinks. A KMS call returns only after its record is durable (fail-closed).

``TrailSink`` (the default since the audit-trail issue) writes every source's records to rolling
files under ``<data_dir>/audit/trail/``; ``iter_trail`` streams them back, oldest or newest
first, one bounded line at a time (``read_trail`` collects the forward stream).

Records are encoded by ``kms.audit.encode`` (bounded, cannot fail), so a sink's only failure is
the disk: ``AuditWriteError``. ``emit_record(record, durable=False)`` appends without waiting for
an fsync: the next durable record, ``sync()`` or the roll makes it durable. The gateway uses it
for requests nobody authenticated, so one client cannot make the server fsync per request
(issue 11, finding 11); every other record is durable before ``emit`` returns.

``JSONLinesSink`` appends one JSON object per line to one file (formerly the KMS's own log)
(mode 0600, ``O_APPEND`` so each record is one ``write``). Durability uses group commit:
a writer appends under a lock, then fsyncs unless another thread's fsync already covered its
record, so N concurrent calls share one fsync instead of queueing N of them.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Protocol, runtime_checkable

from kms.audit.encode import encode_record
from kms.audit.events import AuditEvent, encode_event, is_intent

__all__ = ["AuditSink", "AuditWriteError", "JSONLinesSink", "MemorySink", "TrailSink",
           "FailOpenSink", "read_trail", "iter_trail", "iter_file", "trail_files",
           "trail_sort_key", "TRAIL_DIR"]

log = logging.getLogger("coffer.audit")


class AuditWriteError(Exception):
    """The record could not be made durable; the audited call must fail."""


@runtime_checkable
class AuditSink(Protocol):
    """Persists events. ``emit`` returns only when the event is durable, else raises
    ``AuditWriteError``. Thread-safe."""

    def emit(self, event: AuditEvent) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps records in a list, intent records in another (tests; as ``read_trail``)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.intents: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.fail = False

    def emit(self, event: AuditEvent) -> None:
        self._keep(encode_event(event))

    def emit_record(self, record: dict[str, Any], *, durable: bool = True) -> None:
        self._keep(encode_record(record))

    def _keep(self, line: bytes) -> None:
        if self.fail:
            raise AuditWriteError("memory sink set to fail")
        rec = json.loads(line)
        with self._lock:
            (self.intents if is_intent(rec) else self.records).append(rec)

    def sync(self) -> None:
        pass

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
        line = encode_event(event)
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


# -- the trail: one set of rolling files for every event source ----------------------------------

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_AGE = 3600.0
TRAIL_DIR = "trail"
_TRAIL_NAME = re.compile(r"^(\d{8}T\d{6}Z)-(\d+)\.jsonl$")


def trail_sort_key(name: str) -> tuple[str, int]:
    """Trail files sort by creation time, then sequence number."""
    m = _TRAIL_NAME.match(name)
    return (m.group(1), int(m.group(2))) if m else ("", 0)


def trail_files(audit_dir: Path) -> list[Path]:
    """The trail's files, oldest first."""
    d = Path(audit_dir) / TRAIL_DIR
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if _TRAIL_NAME.match(p.name)),
                  key=lambda p: trail_sort_key(p.name))


_CHUNK = 64 * 1024


def _lines_forward(fd: int) -> Iterator[bytes]:
    rest = b""
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def _lines_backward(fd: int) -> Iterator[bytes]:
    pos = os.fstat(fd).st_size
    rest = b""
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        chunk = os.pread(fd, step, pos)
        parts = (chunk + rest).split(b"\n")
        rest = parts.pop(0)
        yield from reversed(parts)
    if rest:
        yield rest


def iter_file(path: Path, *, newest_first: bool = False,
              intents: bool = False) -> Iterator[dict[str, Any]]:
    """The records of one trail file, streamed (memory: one 64 KiB chunk and one line).
    Torn or unreadable lines are skipped; intent records only with ``intents``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return                            # pruned or rolled away meanwhile
    try:
        for line in (_lines_backward(fd) if newest_first else _lines_forward(fd)):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and (intents or not is_intent(rec)):
                yield rec
    finally:
        os.close(fd)


def iter_trail(audit_dir: Path, *, newest_first: bool = False,
               intents: bool = False) -> Iterator[dict[str, Any]]:
    """Every record of the trail in file order (or its reverse), streamed."""
    files = trail_files(audit_dir)
    for path in (reversed(files) if newest_first else files):
        yield from iter_file(path, newest_first=newest_first, intents=intents)


def read_trail(audit_dir: Path, *, intents: bool = False) -> list[dict[str, Any]]:
    """Every record of the trail, in file order (a torn last line is skipped). Loads the
    whole trail: for tools and tests; servers stream with ``iter_trail``."""
    return list(iter_trail(audit_dir, intents=intents))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TrailSink:
    """Appends records of every source (KMS, S3, IAM) to ``<audit_dir>/trail/<UTC time>-<n>.jsonl``.

    A file is created on the first record after a roll (``O_EXCL``, mode 0600, so processes
    sharing a data dir never share a file) and held under an exclusive ``flock`` while it is
    the active file: digests cover only files nobody writes any more. It rolls when a record
    would take it past ``max_bytes`` or when it is ``max_age`` seconds old, and on ``roll()``
    (the digest task). Durability is group commit, as ``JSONLinesSink``.
    """

    def __init__(self, audit_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age: float = DEFAULT_MAX_AGE, fsync: bool = True,
                 clock: Any = time.time) -> None:
        self.audit_dir = Path(audit_dir)
        self.dir = self.audit_dir / TRAIL_DIR
        self.audit_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.mkdir(exist_ok=True, mode=0o700)
        self.max_bytes, self.max_age = max_bytes, max_age
        self._fsync, self._clock = fsync, clock
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._fd = -1
        self._name: str | None = None
        self._size = 0
        self._opened = 0.0
        self._closed = False
        self._written = 0
        self._synced = 0

    @property
    def active_name(self) -> str | None:
        return self._name

    def _open_new(self) -> None:
        now = self._clock()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        n = 1
        while True:
            path = self.dir / f"{stamp}-{n}.jsonl"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                n += 1
                continue
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        if self._fsync:
            _fsync_dir(self.dir)
        self._fd, self._name, self._size, self._opened = fd, path.name, 0, now

    def _close_current(self) -> str | None:
        """Caller holds both locks. Syncs and closes the active file; returns its name."""
        if self._fd < 0:
            return None
        fd, name = self._fd, self._name
        self._fd, self._name = -1, None
        try:
            if self._fsync:
                os.fdatasync(fd)
            self._synced = self._written
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return name

    def emit(self, event: AuditEvent) -> None:
        self._append(encode_event(event), durable=True)

    def emit_record(self, record: dict[str, Any], *, durable: bool = True) -> None:
        """Append one CloudTrail-shaped record; returns when it is durable (or, with
        ``durable=False``, once it is written: a later fsync covers it)."""
        self._append(encode_record(record), durable=durable)

    def sync(self) -> None:
        """Make every record written so far durable."""
        try:
            with self._sync_lock:
                if self._fd < 0 or self._synced >= self._written:
                    return
                target = self._written
                if self._fsync:
                    os.fdatasync(self._fd)
                self._synced = target
        except OSError as exc:
            raise AuditWriteError(f"audit trail sync failed: {exc.strerror}") from None

    def _append(self, line: bytes, *, durable: bool) -> None:
        try:
            with self._write_lock:
                if self._closed:
                    raise AuditWriteError("audit trail is closed")
                if self._fd >= 0 and self._size > 0 and (
                        self._size + len(line) > self.max_bytes
                        or self._clock() - self._opened >= self.max_age):
                    with self._sync_lock:
                        self._close_current()
                if self._fd < 0:
                    self._open_new()
                n = os.write(self._fd, line)
                if n != len(line):
                    raise AuditWriteError("short write to the audit trail")
                self._size += n
                self._written += 1
                mine = self._written
            if not self._fsync or not durable:
                return
            with self._sync_lock:
                if self._synced >= mine or self._fd < 0:
                    return
                target = self._written
                os.fdatasync(self._fd)
                self._synced = target
        except OSError as exc:
            raise AuditWriteError(f"audit trail write failed: {exc.strerror}") from None

    def roll(self) -> str | None:
        """Close the active file (the next record starts a new one); returns its name."""
        with self._write_lock, self._sync_lock:
            return self._close_current()

    def close(self) -> None:
        with self._write_lock, self._sync_lock:
            self._close_current()
            self._closed = True


class FailOpenSink:
    """Wraps a sink so a failed write is logged instead of failing the call
    (``--audit-fail-open``; the default is fail-closed)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def emit(self, event: AuditEvent) -> None:
        try:
            self.inner.emit(event)
        except AuditWriteError as exc:
            log.error("AUDIT RECORD LOST (fail-open): %s %s: %s", event.event_name,
                      event.request_id, exc)

    def emit_record(self, record: dict[str, Any], *, durable: bool = True) -> None:
        try:
            self.inner.emit_record(record, durable=durable)
        except AuditWriteError as exc:
            log.error("AUDIT RECORD LOST (fail-open): %s %s: %s", record.get("eventName"),
                      record.get("requestID"), exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
