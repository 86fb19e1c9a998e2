"""``coffer audit ...`` and ``coffer kms key-usage``: the audit trail for humans.

    coffer audit digest  [--data-dir D]                write a signed digest now
    coffer audit verify  [--data-dir D] [--from T] [--to T] [--public-key PEM] [--json]
    coffer audit tail    [--data-dir D] [-n N] [--json]
    coffer audit lookup  [--data-dir D] [--event-name X] [--username U] [--resource-name R]
                         [--event-source S] [--access-key-id K] [--read-only true|false]
                         [--start T] [--end T] [--max N] [--json]
    coffer kms key-usage KEY [--data-dir D] [--json]

``verify`` exits 1 when a file or digest was modified or deleted, 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from gateway.config import env_default

__all__ = ["add_audit_parser", "add_serve_arguments", "add_key_usage_parser", "config_kwargs",
           "run", "run_key_usage"]


def _bool_env(name: str) -> bool:
    return (env_default(name, "") or "").lower() in ("1", "true", "yes", "on")


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--audit-fail-open", action="store_true",
                       default=_bool_env("audit_fail_open"),
                       help="serve even when an audit record cannot be written "
                            "(COFFER_AUDIT_FAIL_OPEN; default: refuse the call)")
    serve.add_argument("--audit-digest-interval", type=float,
                       default=float(env_default("audit_digest_interval", "3600") or 3600),
                       help="seconds between signed digests (COFFER_AUDIT_DIGEST_INTERVAL, "
                            "default 3600)")
    serve.add_argument("--audit-roll-bytes", type=int,
                       default=int(env_default("audit_roll_bytes", str(16 << 20)) or 16 << 20),
                       help="roll trail files at this size (default 16 MiB)")
    serve.add_argument("--audit-roll-interval", type=float,
                       default=float(env_default("audit_roll_interval", "3600") or 3600),
                       help="roll trail files at this age in seconds (default 3600)")
    # --audit-retain-days is issue 15's name for it; both spellings (and env twins) work.
    retention = (env_default("audit_retention_days", "")
                 or env_default("audit_retain_days", "") or None)
    serve.add_argument("--audit-retention-days", "--audit-retain-days", type=_retention,
                       dest="audit_retention_days", metavar="DAYS",
                       default=_retention(retention) if retention else None,
                       help="delete trail files older than this many days at each digest, "
                            "recorded in the signed digest chain so `coffer audit verify` "
                            "still passes (COFFER_AUDIT_RETENTION_DAYS or "
                            "COFFER_AUDIT_RETAIN_DAYS; default: keep forever)")


def _retention(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {value!r}") from None
    if not days > 0 or days != days or days == float("inf"):
        raise argparse.ArgumentTypeError("the retention must be a positive number of days")
    return days


def config_kwargs(args: argparse.Namespace) -> dict:
    return {"audit_fail_open": bool(getattr(args, "audit_fail_open", False)),
            "audit_digest_interval": float(getattr(args, "audit_digest_interval", 3600.0)),
            "audit_roll_bytes": int(getattr(args, "audit_roll_bytes", 16 << 20)),
            "audit_roll_interval": float(getattr(args, "audit_roll_interval", 3600.0)),
            "audit_retention_days": getattr(args, "audit_retention_days", None)}


def add_audit_parser(sub, data_dir_arg) -> None:
    audit = sub.add_parser("audit", help="the audit trail: digest, verify, tail, lookup")
    asub = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    data_dir_arg(asub.add_parser("digest", help="write a signed digest of the trail now"))
    verify = asub.add_parser("verify", help="validate trail files against the digest chain")
    data_dir_arg(verify)
    verify.add_argument("--from", dest="start", help="start time (ISO 8601)")
    verify.add_argument("--to", dest="end", help="end time (ISO 8601)")
    verify.add_argument("--public-key", help="PEM public key (default: "
                        "<data-dir>/audit/digest-public-key.pem)")
    verify.add_argument("--json", action="store_true")
    tail = asub.add_parser("tail", help="the newest records")
    data_dir_arg(tail)
    tail.add_argument("-n", type=int, default=20)
    tail.add_argument("--json", action="store_true")
    lookup = asub.add_parser("lookup", help="search records (LookupEvents attributes)")
    data_dir_arg(lookup)
    for flag in ("event-name", "username", "resource-name", "event-source", "access-key-id",
                 "read-only", "event-id", "resource-type"):
        lookup.add_argument(f"--{flag}")
    lookup.add_argument("--start", help="ISO 8601")
    lookup.add_argument("--end", help="ISO 8601")
    lookup.add_argument("--max", type=int, default=50)
    lookup.add_argument("--json", action="store_true")


def add_key_usage_parser(kms_sub, data_dir_arg) -> None:
    p = kms_sub.add_parser("key-usage", help="is this key still used? objects, last use, "
                           "attempts while disabled or pending deletion")
    p.add_argument("key", help="key id, key ARN, alias name or alias ARN")
    data_dir_arg(p)
    p.add_argument("--region", default=env_default("region", "us-east-1"))
    p.add_argument("--json", action="store_true")


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _iso_arg(value: str | None) -> str | None:
    t = _epoch(value)
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _table(records: list[dict]) -> str:
    from kms.audit.lookup import username
    rows = [("TIME", "SOURCE", "EVENT", "USER", "REQUEST ID", "RESULT")]
    for r in records:
        src = (r.get("eventSource") or "").split(".")[0]
        via = (r.get("userIdentity") or {}).get("invokedBy")
        user = (username(r) or "") + (f" (via {via.split('.')[0]})" if via and
                                      username(r) != via else "")
        rows.append((r.get("eventTime", ""), src, r.get("eventName", ""), user,
                     r.get("requestID", ""), r.get("errorCode") or "ok"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in rows)


def _open_kms(data_dir: Path, region: str = "us-east-1"):
    """-> (KMS, its trail sink): this process's KMS calls are audited like the server's."""
    from kms.audit import TrailSink
    from kms.rootkeys import HSMSettings
    from kms.service import KMS
    sink = TrailSink(data_dir / "audit")
    return KMS.open(data_dir, region=region, hsm=HSMSettings.from_env(), audit=sink), sink


def _digest(data_dir: Path) -> int:
    from gateway.audit_trail import KMSDigestSigner
    from kms.audit.digest import write_digest
    kms, sink = _open_kms(data_dir)
    try:
        signer = KMSDigestSigner(kms, data_dir / "audit")
        sink.roll()      # this process's own records (key creation, GetPublicKey)
        path = write_digest(data_dir / "audit", signer)
    finally:
        kms.close()
    doc = json.loads(path.read_bytes())
    print(f"digest {path.name}: {len(doc['logFiles'])} file(s), signed with "
          f"{doc['digestPublicKeyArn']} ({doc['digestSignatureAlgorithm']})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from kms.audit.digest import PUBLIC_KEY_FILE
    from kms.audit.verify import verify_trail
    from kms.crypto.verify_sig import fingerprint, public_pem_to_der, verify_with_public_key
    audit_dir = Path(args.data_dir) / "audit"
    key_path = Path(args.public_key) if args.public_key else audit_dir / PUBLIC_KEY_FILE
    try:
        pem = key_path.read_bytes()
        fp = fingerprint(public_pem_to_der(pem))
    except (OSError, ValueError) as exc:
        print(f"coffer audit verify: cannot read the public key {key_path}: {exc}",
              file=sys.stderr)
        return 2
    report = verify_trail(audit_dir, pem, verify_with_public_key, fingerprint=fp,
                          start=_iso_arg(args.start), end=_iso_arg(args.end))
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        for f in report.digests:
            print(f"digest  {f.status:<16} {f.name}" + (f"  ({f.detail})" if f.detail else ""))
        for f in report.files:
            print(f"file    {f.status:<16} {f.name}" + (f"  ({f.detail})" if f.detail else ""))
        for f in report.intents:
            print(f"intent  {f.status:<16} {f.name}  ({f.detail}: the change may have "
                  "committed)")
        counts = report.counts()
        print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trail files")
        print("OK" if report.ok else "INTEGRITY FAILURE: files or digests were modified or "
              "deleted")
    return 0 if report.ok else 1


def _tail(args: argparse.Namespace) -> int:
    from itertools import islice

    from kms.audit.sinks import iter_trail
    recs = list(islice(iter_trail(Path(args.data_dir) / "audit", newest_first=True),
                       max(0, args.n)))[::-1]
    if args.json:
        for r in recs:
            print(json.dumps(r))
    else:
        print(_table(recs))
    return 0


def _lookup(args: argparse.Namespace) -> int:
    from kms.audit.lookup import lookup_events
    names = {"event_name": "EventName", "username": "Username",
             "resource_name": "ResourceName", "event_source": "EventSource",
             "access_key_id": "AccessKeyId", "read_only": "ReadOnly", "event_id": "EventId",
             "resource_type": "ResourceType"}
    attrs = [(k, getattr(args, a)) for a, k in names.items() if getattr(args, a)]
    recs, _ = lookup_events(Path(args.data_dir) / "audit", attributes=attrs,
                            start=_epoch(args.start), end=_epoch(args.end),
                            max_results=args.max)
    if args.json:
        print(json.dumps(recs, indent=1))
    else:
        print(_table(recs))
    return 0


def run(args: argparse.Namespace) -> int:
    cmd = getattr(args, "audit_command", None)
    if cmd == "digest":
        return _digest(Path(args.data_dir))
    if cmd == "verify":
        return _verify(args)
    if cmd == "tail":
        return _tail(args)
    if cmd == "lookup":
        return _lookup(args)
    print("usage: coffer audit {digest,verify,tail,lookup} [--data-dir DIR]", file=sys.stderr)
    return 2


def run_key_usage(args: argparse.Namespace) -> int:
    from gateway.credentials import load_or_create_root
    from gateway.key_usage import format_report, key_usage_report
    from kms.errors import KMSError
    from kms.model import Caller
    data_dir = Path(args.data_dir)
    ref = args.key
    account = (ref.split(":")[4] if ref.startswith("arn:") else
               load_or_create_root(data_dir).credential.account_id)
    caller = Caller(principal_arn=f"arn:aws:iam::{account}:root", account_id=account,
                    user_agent="coffer-cli key-usage", source_ip="")
    kms, _ = _open_kms(data_dir, args.region)
    try:
        md = kms.describe_key(caller, ref)["KeyMetadata"]
    except KMSError as exc:
        print(f"coffer kms key-usage: {exc.type}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        kms.close()
    report = key_usage_report(data_dir, md["Arn"], md.get("KeyState"))
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0
