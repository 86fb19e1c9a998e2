"""Requests nobody authenticated cannot flood the trail (issue 11, finding 11).

A client without credentials could make the server append (and fsync) one record per request:
with the whole Host header logged that was ~11 KB a request, ~11 GB an hour from one client,
and with fail-closed audit a full disk stops every call. Three measures bound it:

1. every field is bounded by the encoder (``kms.audit.encode``: Host and userAgent 256 bytes),
   so one such record is at most about 1.3 KB (the Host header alone used to be 8 KB);
2. the gateway appends these records without an fsync of their own (``durable=False``; the
   next durable record, roll or digest syncs them), so a flood costs no disk flushes;
3. ``FailureLimiter``: per source IP, the first ``burst`` failures of each ``window`` seconds
   are recorded in full; the rest are only counted and written as one summary record when the
   window ends (on the source's next failure, on ``due()``, or on ``flush()`` at a digest and at
   shutdown). One source thus writes at most ``burst + 1`` records a window; at most
   ``max_sources`` sources are tracked, the rest share one ``"other"`` entry (memory bound).

Summary record (eventType ``CofferSummary``; ``kms.audit.events.SUMMARY``)::

    {"eventVersion": "1.08", "eventType": "CofferSummary", "eventName":
     "UnauthenticatedRequestsSuppressed", "eventSource", "eventTime": <window end>,
     "sourceIPAddress", "awsRegion", "userIdentity": {"type": "AWSAccount", "accountId":
     "anonymous"}, "eventID", "requestID": "", "readOnly": true, "additionalEventData":
     {"suppressedRequests": n, "windowStart", "windowEnd", "errorCodes": {code: n}}}

Failures of authenticated callers are attributable and always recorded in full, durably.
Imports nothing else from ``kms``.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from kms.audit.events import EVENT_VERSION, SUMMARY

__all__ = ["FailureLimiter", "SUMMARY_EVENT_NAME"]

SUMMARY_EVENT_NAME = "UnauthenticatedRequestsSuppressed"
_OTHER = "other"
_MAX_CODES = 16


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass(slots=True)
class _Window:
    start: float
    recorded: int = 0
    suppressed: int = 0
    codes: dict[str, int] = field(default_factory=dict)


class FailureLimiter:
    """Decides which unauthenticated failures are recorded in full (thread-safe)."""

    def __init__(self, *, region: str, source: str = "s3.amazonaws.com", burst: int = 10,
                 window: float = 60.0, max_sources: int = 4096,
                 clock: Callable[[], float] = time.time) -> None:
        self.region, self.source = region, source
        self.burst, self.window, self.max_sources = burst, window, max_sources
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._next_scan = 0.0

    def admit(self, source_ip: str, error_code: str) -> tuple[bool, list[dict[str, Any]]]:
        """-> (record this failure in full?, summary records now due)."""
        now = self._clock()
        out: list[dict[str, Any]] = []
        with self._lock:
            ip = source_ip if (source_ip in self._windows
                               or len(self._windows) < self.max_sources) else _OTHER
            w = self._windows.get(ip)
            if w is not None and now - w.start >= self.window:
                summary = self._summary(ip, w)
                if summary is not None:
                    out.append(summary)
                w = None
            if w is None:
                w = self._windows[ip] = _Window(start=now)
            if w.recorded < self.burst:
                w.recorded += 1
                return True, out
            w.suppressed += 1
            code = error_code[:64]
            if code in w.codes or len(w.codes) < _MAX_CODES:
                w.codes[code] = w.codes.get(code, 0) + 1
            return False, out

    def due(self) -> list[dict[str, Any]]:
        """Summaries of windows that have ended (scans at most once a window)."""
        now = self._clock()
        with self._lock:
            if now < self._next_scan:
                return []
            self._next_scan = now + self.window
            return self._take(lambda w: now - w.start >= self.window)

    def flush(self) -> list[dict[str, Any]]:
        """Every pending summary, ended or not (digest time, shutdown)."""
        with self._lock:
            return self._take(lambda w: True)

    def _take(self, ended: Callable[[_Window], bool]) -> list[dict[str, Any]]:
        out = []
        for ip, w in list(self._windows.items()):
            if ended(w):
                summary = self._summary(ip, w)
                if summary is not None:
                    out.append(summary)
                del self._windows[ip]
        return out

    def _summary(self, ip: str, w: _Window) -> dict[str, Any] | None:
        if not w.suppressed:
            return None
        end = max(w.start, min(self._clock(), w.start + self.window))
        return {
            "eventVersion": EVENT_VERSION, "eventType": SUMMARY,
            "eventName": SUMMARY_EVENT_NAME, "eventSource": self.source,
            "eventTime": _iso(end), "sourceIPAddress": ip, "awsRegion": self.region,
            "userIdentity": {"type": "AWSAccount", "principalId": "", "accountId": "anonymous"},
            "eventID": str(uuid.uuid4()), "requestID": "", "readOnly": True,
            "additionalEventData": {"suppressedRequests": w.suppressed,
                                    "windowStart": _iso(w.start), "windowEnd": _iso(end),
                                    "errorCodes": dict(w.codes)},
            "managementEvent": False, "eventCategory": "Data", "recipientAccountId": "",
        }
