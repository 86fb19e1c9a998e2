"""``coffer s3 encryption-report``: per bucket, how many objects and bytes sit under which SSE
mode, KMS key and key version, unencrypted objects included.

Read-only and offline: it scans the sidecars under ``<data-dir>/s3`` with the key-usage
report's scanner (gateway/key_usage.py), so it runs beside a live server and needs no
credentials. The key version is read from the wrapped data key itself: a ``coffer-kms-ct/1``
blob names its key id and version in clear (kms/ciphertext.py), so nothing is decrypted. That
is what answers "which objects still depend on version 1 of this key?" after a rotation.

JSON shape (``--json``; every mode appears in ``byMode``, zeros included, so scripts can index
it)::

    {"buckets": [{"bucket": str, "objects": int, "bytes": int, "unreadable": int,
                  "byMode": {"none" | "AES256" | "aws:kms" | "SSE-C": {"objects", "bytes"}},
                  "byKey": [{"mode", "keyArn", "keyVersion": int | null, "objects", "bytes"}]}],
     "total": {"objects", "bytes", "unreadable", "byMode": {...}}}

``bytes`` is the object size S3 reports (plaintext), not the ciphertext on disk. ``byKey`` has a
row per (mode, key ARN, version) for AES256 (the gateway-owned SSE-S3 key) and aws:kms; its
``keyVersion`` is null when the wrapped key cannot be parsed. ``unreadable`` counts sidecars
that could not be read (being replaced at that instant, or corrupt: run ``coffer fsck``).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path
from typing import Any

from gateway.key_usage import bucket_dirs, object_records, sse_record
from kms import ciphertext
from kms.errors import InvalidCiphertextException

__all__ = ["MODES", "encryption_report", "add_s3_parser", "run"]

MODES = ("none", "AES256", "aws:kms", "SSE-C")
_KEYED = ("AES256", "aws:kms")


def _key_version(sse: dict[str, Any]) -> int | None:
    wrapped = sse.get("wrapped_key")
    if not isinstance(wrapped, str):
        return None
    try:
        return ciphertext.deserialize(base64.b64decode(wrapped, validate=True)).key_version
    except (binascii.Error, ValueError, InvalidCiphertextException):
        return None


def _size(rec: dict[str, Any]) -> int | None:
    size = rec.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _modes() -> dict[str, dict[str, int]]:
    return {m: {"objects": 0, "bytes": 0} for m in MODES}


def _bucket_report(bdir: Path) -> dict[str, Any]:
    by_mode = _modes()
    by_key: dict[tuple[str, str, int | None], dict[str, Any]] = {}
    unreadable = 0
    for rec in object_records(bdir):
        size = None if rec is None else _size(rec)
        if size is None:
            unreadable += 1
            continue
        sse = sse_record(rec)
        mode = str(sse.get("mode") or "none") if sse else "none"
        by_mode.setdefault(mode, {"objects": 0, "bytes": 0})
        by_mode[mode]["objects"] += 1
        by_mode[mode]["bytes"] += size
        if mode in _KEYED:
            k = (mode, str(sse.get("key_arn") or ""), _key_version(sse))
            row = by_key.setdefault(k, {"mode": k[0], "keyArn": k[1], "keyVersion": k[2],
                                        "objects": 0, "bytes": 0})
            row["objects"] += 1
            row["bytes"] += size
    rows = sorted(by_key.values(), key=lambda r: (r["mode"], r["keyArn"],
                                                  r["keyVersion"] or 0))
    return {"bucket": bdir.name, "objects": sum(m["objects"] for m in by_mode.values()),
            "bytes": sum(m["bytes"] for m in by_mode.values()), "unreadable": unreadable,
            "byMode": by_mode, "byKey": rows}


def encryption_report(data_dir: Path) -> dict[str, Any]:
    buckets = [_bucket_report(b) for b in bucket_dirs(Path(data_dir) / "s3")]
    total_modes = _modes()
    for b in buckets:
        for mode, agg in b["byMode"].items():
            t = total_modes.setdefault(mode, {"objects": 0, "bytes": 0})
            t["objects"] += agg["objects"]
            t["bytes"] += agg["bytes"]
    return {"buckets": buckets,
            "total": {"objects": sum(b["objects"] for b in buckets),
                      "bytes": sum(b["bytes"] for b in buckets),
                      "unreadable": sum(b["unreadable"] for b in buckets),
                      "byMode": total_modes}}


def _table(report: dict[str, Any]):
    from rich.table import Table

    table = Table(title="Encryption at rest, by bucket", show_lines=False)
    for name, kw in (("Bucket", {}), ("Mode", {}), ("KMS key", {"overflow": "fold"}),
                     ("Version", {"justify": "right"}), ("Objects", {"justify": "right"}),
                     ("Bytes", {"justify": "right"})):
        table.add_column(name, **kw)
    for b in report["buckets"]:
        first = True
        keyed = {r["mode"] for r in b["byKey"]}
        for mode, agg in b["byMode"].items():
            if not agg["objects"]:
                continue
            rows = ([r for r in b["byKey"] if r["mode"] == mode] if mode in keyed
                    else [{"keyArn": "-", "keyVersion": None, **agg}])
            for r in rows:
                version = "-" if mode not in keyed else (
                    "?" if r["keyVersion"] is None else str(r["keyVersion"]))
                table.add_row(b["bucket"] if first else "", mode, r["keyArn"] or "?", version,
                              f"{r['objects']:,}", f"{r['bytes']:,}")
                first = False
        note = f" ({b['unreadable']} unreadable)" if b["unreadable"] else ""
        table.add_row(b["bucket"] if first else "", f"[bold]all{note}[/bold]", "", "",
                      f"[bold]{b['objects']:,}[/bold]", f"[bold]{b['bytes']:,}[/bold]",
                      end_section=True)
    t = report["total"]
    table.add_row("[bold]total[/bold]", "", "", "", f"[bold]{t['objects']:,}[/bold]",
                  f"[bold]{t['bytes']:,}[/bold]")
    return table


def add_s3_parser(sub, data_dir_arg):
    """``coffer s3``; returns its subparsers so other actions (reencrypt) can join."""
    s3 = sub.add_parser("s3", help="object store reports (offline) and re-encryption")
    s3_sub = s3.add_subparsers(dest="s3_command", metavar="ACTION")
    report = s3_sub.add_parser(
        "encryption-report", help="objects and bytes per bucket by SSE mode, KMS key and key "
        "version (unencrypted included)",
        description="Scan <data-dir>/s3 (safe while the server runs) and count, per bucket, "
        "the objects and bytes under each SSE mode (none, AES256, aws:kms, SSE-C) and each "
        "KMS key ARN and key version. Nothing is decrypted.")
    data_dir_arg(report)
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return s3_sub


def run(args: argparse.Namespace) -> int:
    if args.s3_command != "encryption-report":
        print("usage: coffer s3 {encryption-report,reencrypt} ... (coffer s3 --help)",
              file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir)
    if not (data_dir / "s3").is_dir():
        print(f"coffer s3 encryption-report: no object store in {data_dir}", file=sys.stderr)
        return 1
    report = encryption_report(data_dir)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    Console().print(_table(report))
    return 0
