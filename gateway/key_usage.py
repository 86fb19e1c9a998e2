"""The key-usage report: "is this KMS key still used?" (``coffer kms key-usage <key>``).

Answers from two sources, both read-only so the report runs beside a live server:

* the object store's sidecars (``<data_dir>/s3/buckets/*/objects/*/*.json``, meta["sse"]
  ["key_arn"]): the objects whose data keys are wrapped under the key, by bucket (count, bytes,
  newest write) -- exactly what becomes unreadable if the key is deleted;
* the audit trail: the last successful use per operation and principal, and every attempted
  use while the key was disabled or pending deletion.

``deletion_warning`` is the probe the gateway gives the KMS for ScheduleKeyDeletion.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kms.audit.sinks import iter_trail

__all__ = ["bucket_dirs", "object_records", "sse_record", "objects_under_key",
           "key_usage_report", "deletion_warning", "format_report"]

_UNUSABLE_ERRORS = {"DisabledException", "KMSInvalidStateException"}
_USE_EVENTS = {"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey",
               "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
               "GenerateDataKeyPairWithoutPlaintext", "Sign", "Verify", "GenerateMac",
               "VerifyMac", "DeriveSharedSecret", "GetPublicKey"}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def bucket_dirs(s3_root: Path) -> list[Path]:
    """Every bucket directory under ``<s3_root>/buckets`` (storage/fs/layout.py), by name."""
    buckets = Path(s3_root) / "buckets"
    if not buckets.is_dir():
        return []
    return sorted(p for p in buckets.iterdir() if p.is_dir())


def object_records(bucket_dir: Path) -> Iterator[dict[str, Any] | None]:
    """Each object sidecar of one bucket as its JSON document, or None when it cannot be read
    (a sidecar replaced or removed while we scan, or a corrupt one). Read-only: safe beside a
    live server, which renames sidecars into place atomically."""
    objects = Path(bucket_dir) / "objects"
    if not objects.is_dir():
        return
    for sidecar in objects.glob("*/*.json"):
        try:
            rec = json.loads(sidecar.read_bytes())
        except (OSError, ValueError):
            yield None
            continue
        yield rec if isinstance(rec, dict) else None


def sse_record(rec: dict[str, Any]) -> dict[str, Any]:
    """The object's ``meta["sse"]`` (gateway/sse/envelope.py), {} for an unencrypted one."""
    meta = rec.get("meta")
    sse = meta.get("sse") if isinstance(meta, dict) else None
    return sse if isinstance(sse, dict) else {}


def objects_under_key(s3_root: Path, key_arn: str) -> list[dict[str, Any]]:
    """Every stored object whose SSE record names ``key_arn``: bucket, key, size, last write."""
    out = []
    for bdir in bucket_dirs(s3_root):
        for rec in object_records(bdir):
            if rec is not None and sse_record(rec).get("key_arn") == key_arn:
                out.append({"bucket": bdir.name, "key": rec.get("key"),
                            "size": int(rec.get("size") or 0),
                            "lastModified": float(rec.get("last_modified") or 0)})
    out.sort(key=lambda o: (o["bucket"], o["key"] or ""))
    return out


def _by_bucket(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    agg: dict[str, dict[str, Any]] = {}
    for o in objs:
        b = agg.setdefault(o["bucket"], {"bucket": o["bucket"], "count": 0, "bytes": 0,
                                         "newestWrite": 0.0})
        b["count"] += 1
        b["bytes"] += o["size"]
        b["newestWrite"] = max(b["newestWrite"], o["lastModified"])
    return [dict(b, newestWrite=_iso(b["newestWrite"])) for b in agg.values()]


def deletion_warning(s3_root: Path, key_arn: str) -> str | None:
    objs = objects_under_key(s3_root, key_arn)
    if not objs:
        return None
    buckets = _by_bucket(objs)
    total = sum(o["size"] for o in objs)
    where = ", ".join(f"{b['bucket']} ({b['count']})" for b in buckets)
    return (f"This key still protects {len(objs)} object(s), {total} bytes, in bucket(s) "
            f"{where}. They become unreadable when the key is deleted; CancelKeyDeletion "
            "before the deletion date keeps them readable.")


def _uses_key(rec: dict[str, Any], key_arn: str) -> bool:
    return (rec.get("eventSource") == "kms.amazonaws.com"
            and any(isinstance(r, dict) and r.get("ARN") == key_arn
                    for r in rec.get("resources") or []))


def key_usage_report(data_dir: Path, key_arn: str, key_state: str | None = None,
                     records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data_dir = Path(data_dir)
    objs = objects_under_key(data_dir / "s3", key_arn)
    recs = iter_trail(data_dir / "audit") if records is None else records   # streamed
    last: dict[tuple[str, str], dict[str, Any]] = {}
    attempts = []
    for rec in recs:
        if not _uses_key(rec, key_arn):
            continue
        ident = rec.get("userIdentity") or {}
        principal = ident.get("arn") or ident.get("invokedBy") or ""
        if rec.get("errorCode") in _UNUSABLE_ERRORS:
            attempts.append({"eventTime": rec.get("eventTime"), "eventName": rec.get("eventName"),
                             "principal": principal, "invokedBy": ident.get("invokedBy"),
                             "errorCode": rec.get("errorCode"),
                             "errorMessage": rec.get("errorMessage"),
                             "requestID": rec.get("requestID")})
            continue
        if rec.get("errorCode") or rec.get("eventName") not in _USE_EVENTS:
            continue
        k = (rec["eventName"], principal)
        entry = last.setdefault(k, {"operation": k[0], "principal": k[1], "count": 0,
                                    "lastUsed": "", "invokedBy": ident.get("invokedBy")})
        entry["count"] += 1
        if rec.get("eventTime", "") >= entry["lastUsed"]:
            entry["lastUsed"] = rec.get("eventTime", "")
    uses = sorted(last.values(), key=lambda e: e["lastUsed"], reverse=True)
    report = {
        "keyArn": key_arn, "keyState": key_state,
        "stillUsed": bool(objs) or bool(uses),
        "objects": {"count": len(objs), "bytes": sum(o["size"] for o in objs),
                    "byBucket": _by_bucket(objs),
                    "items": [dict(o, lastModified=_iso(o["lastModified"])) for o in objs]},
        "lastUse": uses,
        "attemptsWhileUnusable": attempts,
    }
    if objs:
        report["unreadableIfDeleted"] = [f"{o['bucket']}/{o['key']}" for o in objs]
    return report


def format_report(r: dict[str, Any]) -> str:
    lines = [f"Key {r['keyArn']}  state {r.get('keyState') or '?'}  "
             f"still used: {'YES' if r['stillUsed'] else 'no'}", ""]
    o = r["objects"]
    lines.append(f"Objects protected: {o['count']} ({o['bytes']} bytes)")
    if o["byBucket"]:
        lines.append(f"  {'BUCKET':<40} {'COUNT':>7} {'BYTES':>12}  NEWEST WRITE")
        for b in o["byBucket"]:
            lines.append(f"  {b['bucket']:<40} {b['count']:>7} {b['bytes']:>12}  "
                         f"{b['newestWrite']}")
    lines += ["", "Last successful use:"]
    if not r["lastUse"]:
        lines.append("  (none in the trail)")
    for u in r["lastUse"]:
        via = f" via {u['invokedBy']}" if u.get("invokedBy") else ""
        lines.append(f"  {u['operation']:<32} {u['lastUsed']}  x{u['count']:<6} "
                     f"{u['principal']}{via}")
    lines += ["", "Attempted uses while disabled or pending deletion:"]
    if not r["attemptsWhileUnusable"]:
        lines.append("  (none)")
    for a in r["attemptsWhileUnusable"]:
        lines.append(f"  {a['eventTime']}  {a['eventName']:<24} {a['errorCode']:<26} "
                     f"{a['principal']}  request {a['requestID']}")
    if r.get("unreadableIfDeleted"):
        lines += ["", "Unreadable if this key is deleted:"]
        lines += [f"  {name}" for name in r["unreadableIfDeleted"]]
    return "\n".join(lines)
