"""Search the trail: CloudTrail LookupEvents semantics for the API and the CLI.

Events come newest first, filtered by at most one lookup attribute (EventId, EventName,
ReadOnly, Username, ResourceType, ResourceName, EventSource, AccessKeyId, as CloudTrail) and a
time window; ``NextToken`` is an opaque cursor (the last event's time and id), so pages stay
consistent while new records arrive.

The trail is streamed from its files on each call, never loaded: files are read backwards in
64 KiB chunks (``kms.audit.sinks.iter_file``) and merged newest first by event time (each file
holds one writer's records in time order; a file is opened only once the merge reaches its
newest record, so with N workers about N files are open at once), and the scan stops as soon as
the page is full. Memory is bounded by the page size, the number of overlapping files and one
chunk each, whatever the trail's size; a deep NextToken costs a longer scan, not more memory.
Intent records (``kms.audit.events.INTENT``) are not events and are skipped.
"""
from __future__ import annotations

import base64
import binascii
import calendar
import heapq
import json
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from kms.audit.sinks import iter_file, trail_files

__all__ = ["LOOKUP_ATTRIBUTES", "lookup_events", "to_lookup_event", "username", "event_epoch",
           "LookupError_", "newest_first"]

LOOKUP_ATTRIBUTES = ("EventId", "EventName", "ReadOnly", "Username", "ResourceType",
                     "ResourceName", "EventSource", "AccessKeyId")


class LookupError_(ValueError):
    """A malformed lookup (bad attribute key, bad token)."""


def event_epoch(rec: dict[str, Any]) -> float:
    try:
        return float(calendar.timegm(time.strptime(rec.get("eventTime", ""),
                                                   "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return 0.0


def username(rec: dict[str, Any]) -> str | None:
    ident = rec.get("userIdentity") or {}
    if ident.get("userName"):
        return ident["userName"]
    kind = ident.get("type")
    if kind == "Root":
        return "root"
    arn = ident.get("arn")
    if isinstance(arn, str) and "/" in arn:
        return arn.rsplit("/", 1)[-1]
    return ident.get("invokedBy")


def _resources(rec: dict[str, Any]) -> list[dict[str, str]]:
    return [{"ResourceType": r.get("type", ""), "ResourceName": r.get("ARN", "")}
            for r in rec.get("resources") or [] if isinstance(r, dict)]


def _resource_names(rec: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for r in _resources(rec):
        arn = r["ResourceName"]
        names.add(arn)
        if arn.startswith("arn:aws:s3:::"):
            names.add(arn[len("arn:aws:s3:::"):])
        else:
            names.add(arn.rsplit("/", 1)[-1])
    params = rec.get("requestParameters") or {}
    for k in ("keyId", "bucketName", "key", "userName", "aliasName"):
        if isinstance(params.get(k), str):
            names.add(params[k])
    return names


def _matches(rec: dict[str, Any], key: str, value: str) -> bool:
    if key == "EventId":
        return rec.get("eventID") == value
    if key == "EventName":
        return rec.get("eventName") == value
    if key == "ReadOnly":
        return str(bool(rec.get("readOnly"))).lower() == value.lower()
    if key == "Username":
        return username(rec) == value
    if key == "ResourceType":
        return any(r["ResourceType"] == value for r in _resources(rec))
    if key == "ResourceName":
        return value in _resource_names(rec)
    if key == "EventSource":
        return rec.get("eventSource") == value
    if key == "AccessKeyId":
        return (rec.get("userIdentity") or {}).get("accessKeyId") == value
    raise LookupError_(f"Unknown lookup attribute {key}")


def _encode_token(rec: dict[str, Any]) -> str:
    raw = json.dumps([rec.get("eventTime", ""), rec.get("eventID", "")]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str) -> tuple[str, str]:
    try:
        t, i = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(t), str(i)
    except (binascii.Error, ValueError, TypeError):
        raise LookupError_("Invalid NextToken") from None


def _last_time(path: Path) -> str:
    """The eventTime of a file's last readable record ("" if none): the newest it holds."""
    for rec in iter_file(path, newest_first=True, intents=True):
        t = rec.get("eventTime")
        return t if isinstance(t, str) else ""
    return ""


def newest_first(audit_dir: Path) -> Iterator[dict[str, Any]]:
    """Every record of the trail (intents excluded), newest eventTime first; ties in reverse
    write order. Streams (see the module docstring)."""
    files = sorted(((_last_time(p), i, p) for i, p in enumerate(trail_files(audit_dir))),
                   reverse=True)
    heap: list[tuple[tuple[int, ...], int, dict[str, Any], Iterator[dict[str, Any]]]] = []

    def push(rank: int, it: Iterator[dict[str, Any]]) -> None:
        for rec in it:
            t = rec.get("eventTime")
            heapq.heappush(heap, (_desc(t if isinstance(t, str) else ""), -rank, rec, it))
            return

    nxt = 0
    while heap or nxt < len(files):
        # Open the next file once no open file has a record as new as its newest one.
        while nxt < len(files) and (not heap or heap[0][0] > _desc(files[nxt][0])):
            _, rank, path = files[nxt]
            push(rank, iter_file(path, newest_first=True))
            nxt += 1
        if not heap:
            continue
        _, neg_rank, rec, it = heapq.heappop(heap)
        yield rec
        push(-neg_rank, it)


def _desc(t: str) -> tuple[int, ...]:
    """A heap key sorting ISO times descending (heapq is a min-heap); no time sorts last."""
    return tuple(-b for b in t.encode("ascii", "replace")) if t else (1,)


def lookup_events(audit_dir: Path, *, attributes: Iterable[tuple[str, str]] = (),
                  start: float | None = None, end: float | None = None,
                  account: str | None = None, max_results: int = 50,
                  next_token: str | None = None,
                  records: Iterable[dict[str, Any]] | None = None
                  ) -> tuple[list[dict[str, Any]], str | None]:
    """-> (records newest first, next token or None). ``account`` limits the events to those
    of one account (its callers' and those it received). ``records`` (newest first) replaces
    the trail."""
    attrs = list(attributes)
    for k, _ in attrs:
        if k not in LOOKUP_ATTRIBUTES:
            raise LookupError_(f"Unknown lookup attribute {k}")
    after: tuple[str, str] | None = _decode_token(next_token) if next_token else None
    want = max(1, max_results)
    page: list[dict[str, Any]] = []
    stream = newest_first(audit_dir) if records is None else iter(records)
    for rec in stream:
        if account is not None and account not in (
                rec.get("recipientAccountId"), (rec.get("userIdentity") or {}).get("accountId")):
            continue
        t = event_epoch(rec)
        if end is not None and t > end:
            continue
        if start is not None and t < start:
            continue
        if not all(_matches(rec, k, v) for k, v in attrs):
            continue
        if after is not None:
            when, event_id = after
            if rec.get("eventID") == event_id:
                after = None            # the token's own event: the page starts after it
                continue
            if rec.get("eventTime", "") >= when:
                continue                # newer than the token: shown on an earlier page
            after = None                # its event is gone (pruned): resume by time
        if len(page) == want:
            return page, _encode_token(page[-1])
        page.append(rec)
    return page, None


def to_lookup_event(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as LookupEvents returns it (EventTime in epoch seconds for the JSON protocol)."""
    out: dict[str, Any] = {
        "EventId": rec.get("eventID", ""), "EventName": rec.get("eventName", ""),
        "ReadOnly": str(bool(rec.get("readOnly"))).lower(),
        "EventTime": event_epoch(rec), "EventSource": rec.get("eventSource", ""),
        "Resources": _resources(rec),
        "CloudTrailEvent": json.dumps(rec, separators=(",", ":")),
    }
    key = (rec.get("userIdentity") or {}).get("accessKeyId")
    if key:
        out["AccessKeyId"] = key
    user = username(rec)
    if user:
        out["Username"] = user
    return out
