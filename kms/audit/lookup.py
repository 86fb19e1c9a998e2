"""Search the trail: CloudTrail LookupEvents semantics for the API and the CLI.

Events come newest first, filtered by at most one lookup attribute (EventId, EventName,
ReadOnly, Username, ResourceType, ResourceName, EventSource, AccessKeyId, as CloudTrail) and a
time window; ``NextToken`` is an opaque cursor (the last event's time and id), so pages stay
consistent while new records arrive. The trail is read from its files on each call.
"""
from __future__ import annotations

import base64
import binascii
import calendar
import json
import time
from pathlib import Path
from typing import Any, Iterable

from kms.audit.sinks import read_trail

__all__ = ["LOOKUP_ATTRIBUTES", "lookup_events", "to_lookup_event", "username", "event_epoch",
           "LookupError_"]

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


def lookup_events(audit_dir: Path, *, attributes: Iterable[tuple[str, str]] = (),
                  start: float | None = None, end: float | None = None,
                  account: str | None = None, max_results: int = 50,
                  next_token: str | None = None,
                  records: list[dict[str, Any]] | None = None
                  ) -> tuple[list[dict[str, Any]], str | None]:
    """-> (records newest first, next token or None). ``account`` limits the events to those
    of one account (its callers' and those it received)."""
    attrs = list(attributes)
    for k, _ in attrs:
        if k not in LOOKUP_ATTRIBUTES:
            raise LookupError_(f"Unknown lookup attribute {k}")
    recs = read_trail(audit_dir) if records is None else records
    out = []
    for pos, rec in enumerate(recs):
        if account is not None and account not in (
                rec.get("recipientAccountId"), (rec.get("userIdentity") or {}).get("accountId")):
            continue
        t = event_epoch(rec)
        if start is not None and t < start:
            continue
        if end is not None and t > end:
            continue
        if all(_matches(rec, k, v) for k, v in attrs):
            out.append((rec.get("eventTime", ""), pos, rec))
    # Newest first; within one second, in trail order (newest written first).
    out.sort(key=lambda x: (x[0], x[1]), reverse=True)
    if next_token:
        when, event_id = _decode_token(next_token)
        at = next((i for i, x in enumerate(out) if x[2].get("eventID") == event_id), None)
        out = out[at + 1:] if at is not None else [x for x in out if x[0] < when]
    out = [x[2] for x in out]
    page = out[:max(1, max_results)]
    token = _encode_token(page[-1]) if len(out) > len(page) else None
    return page, token


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
