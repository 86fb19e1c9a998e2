"""Digest files: log file integrity validation after CloudTrail's.

Every interval (and on clean shutdown, and on demand) a digest file
``<audit_dir>/digests/<UTC time>-<n>.json`` lists each trail file that no earlier digest
covers, with its SHA-256, size, record count and oldest/newest event time, plus the previous
digest's file name, SHA-256 and signature, so the digests form a chain. The document is signed
by a KMS asymmetric key (``DigestSigner``: the gateway wires Coffer's own KMS, see
``gateway.audit_trail``); the signature covers the canonical JSON of every other field
(``canonical``: sorted keys, no whitespace, UTF-8) and is stored in ``digestSignature``
(base64). Verification needs only the public key (``kms.audit.verify``).

A trail file still being written is held under an exclusive ``flock`` by its writer
(``TrailSink``) and is left for a later digest.

Retention (``retention_days``, ``--audit-retention-days``; default: keep forever): a digest
run prunes trail files whose newest event is older than the retention and that an earlier
digest already covers. The digest it writes lists them first, signed, in ``prunedLogFiles``
(name, the hash the covering digest recorded, size, records, newest event time, that digest's
name); only then are the files deleted. So ``coffer audit verify`` reports a pruned file as
``pruned`` while a file deleted any other way is still ``deleted``; a crash between the two
steps leaves a listed file that the next run deletes. Digests themselves are kept (a few KB
each): they are the chain. Format: ``digestVersion`` "1.1" adds ``prunedLogFiles``; "1.0"
digests (no pruning) are read unchanged.

Imports nothing else from ``kms``.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Protocol

from kms.audit.sinks import TRAIL_DIR, trail_files

__all__ = ["DigestSigner", "DIGEST_DIR", "PUBLIC_KEY_FILE", "canonical", "digest_files",
           "load_digest", "write_digest", "file_entry", "sorted_lines_hash", "covered_files",
           "digest_sort_key", "iso", "DIGEST_VERSION", "DIGEST_VERSIONS", "pruned_files"]

DIGEST_DIR = "digests"
PUBLIC_KEY_FILE = "digest-public-key.pem"
DIGEST_VERSION = "1.1"
DIGEST_VERSIONS = ("1.0", "1.1")          # what verify reads
DAY = 86400.0
HASH_ALGORITHM = "SHA-256"
_DIGEST_NAME = re.compile(r"^(\d{8}T\d{6}Z)-(\d+)\.json$")


class DigestSigner(Protocol):
    """Signs the SHA-256 of a digest document (KMS Sign, MessageType DIGEST)."""

    key_arn: str
    algorithm: str                 # e.g. ECDSA_SHA_256 / RSASSA_PSS_SHA_256
    public_key_fingerprint: str    # sha256 hex of the SubjectPublicKeyInfo DER
    account_id: str

    def sign_digest(self, digest: bytes) -> bytes: ...


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "digestSignature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_sort_key(name: str) -> tuple[str, int]:
    m = _DIGEST_NAME.match(name)
    return (m.group(1), int(m.group(2))) if m else ("", 0)


def digest_files(audit_dir: Path) -> list[Path]:
    d = Path(audit_dir) / DIGEST_DIR
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if _DIGEST_NAME.match(p.name)),
                  key=lambda p: digest_sort_key(p.name))


def load_digest(path: Path) -> dict[str, Any]:
    doc = json.loads(Path(path).read_bytes())
    if not isinstance(doc, dict):
        raise ValueError("a digest is a JSON object")
    return doc


def sorted_lines_hash(data: bytes) -> str:
    """Order-independent hash of a trail file's records: tells 'reordered' from 'altered'."""
    lines = sorted(line for line in data.split(b"\n") if line)
    return hashlib.sha256(b"\n".join(lines)).hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    data = Path(path).read_bytes()
    times = []
    count = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        count += 1
        try:
            t = json.loads(line).get("eventTime")
        except (ValueError, AttributeError):
            continue
        if isinstance(t, str):
            times.append(t)
    return {"name": Path(path).name, "hashAlgorithm": HASH_ALGORITHM,
            "hashValue": hashlib.sha256(data).hexdigest(), "size": len(data),
            "records": count, "sortedRecordsHash": sorted_lines_hash(data),
            "oldestEventTime": min(times) if times else None,
            "newestEventTime": max(times) if times else None}


def covered_files(audit_dir: Path) -> set[str]:
    names: set[str] = set()
    for p in digest_files(audit_dir):
        try:
            doc = load_digest(p)
        except (OSError, ValueError):
            continue
        for f in doc.get("logFiles") or []:
            if isinstance(f, dict) and isinstance(f.get("name"), str):
                names.add(f["name"])
    return names


def pruned_files(docs: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (digest file, entry) for every trail file a digest of ``docs`` (name -> doc)
    records as pruned."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, doc in docs:
        for entry in (doc or {}).get("prunedLogFiles") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                out.setdefault(entry["name"], (name, entry))
    return out


def _prunable(audit_dir: Path, cutoff: str) -> tuple[list[dict[str, Any]], list[Path]]:
    """-> (entries to record as pruned now, files recorded earlier but still present)."""
    docs = []
    for p in digest_files(audit_dir):
        try:
            docs.append((p.name, load_digest(p)))
        except (OSError, ValueError):
            continue
    done = pruned_files(docs)
    listed: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, doc in docs:
        for entry in doc.get("logFiles") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                listed.setdefault(entry["name"], (name, entry))
    new, leftover = [], []
    for path in trail_files(audit_dir):
        if path.name in done:
            leftover.append(path)
            continue
        hit = listed.get(path.name)
        if hit is None or _in_use(path):
            continue
        digest_name, entry = hit
        newest = entry.get("newestEventTime")
        if isinstance(newest, str) and newest < cutoff:
            new.append({"name": path.name, "hashAlgorithm": HASH_ALGORITHM,
                        "hashValue": entry.get("hashValue"), "size": entry.get("size"),
                        "records": entry.get("records"), "newestEventTime": newest,
                        "coveredBy": digest_name})
    return new, leftover


def _unlink_all(paths: list[Path]) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    if paths:
        dfd = os.open(paths[0].parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _in_use(path: Path) -> bool:
    """True while a writer holds the file's flock (it is some process's active file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def _digest_lock(audit_dir: Path) -> Iterator[None]:
    d = Path(audit_dir) / DIGEST_DIR
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_digest(audit_dir: Path, signer: DigestSigner, *, now: float | None = None,
                 exclude: frozenset[str] | set[str] = frozenset(),
                 retention_days: float | None = None) -> Path:
    """Write and sign the next digest of the chain; returns its path. Files named in
    ``exclude`` or held by a writer are left for the next digest. With ``retention_days``,
    covered files older than that are recorded as pruned, then deleted."""
    audit_dir = Path(audit_dir)
    now = time.time() if now is None else now
    with _digest_lock(audit_dir):
        pruned: list[dict[str, Any]] = []
        leftover: list[Path] = []
        if retention_days is not None:
            pruned, leftover = _prunable(audit_dir, iso(now - float(retention_days) * DAY))
        digests = digest_files(audit_dir)
        prev_path = digests[-1] if digests else None
        prev: dict[str, Any] | None = None
        prev_bytes = b""
        if prev_path is not None:
            prev_bytes = prev_path.read_bytes()
            prev = json.loads(prev_bytes)
        done = covered_files(audit_dir)
        entries = [file_entry(p) for p in trail_files(audit_dir)
                   if p.name not in done and p.name not in exclude and not _in_use(p)]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        n = 1
        while (audit_dir / DIGEST_DIR / f"{stamp}-{n}.json").exists():
            n += 1
        name = f"{stamp}-{n}.json"
        oldest = [e["oldestEventTime"] for e in entries if e["oldestEventTime"]]
        newest = [e["newestEventTime"] for e in entries if e["newestEventTime"]]
        start = (prev or {}).get("digestEndTime") or (min(oldest) if oldest else iso(now))
        doc: dict[str, Any] = {
            "digestVersion": DIGEST_VERSION,
            "awsAccountId": signer.account_id,
            "digestFile": name,
            "digestStartTime": start,
            "digestEndTime": iso(now),
            "logDirectory": TRAIL_DIR,
            "oldestEventTime": min(oldest) if oldest else None,
            "newestEventTime": max(newest) if newest else None,
            "previousDigestFile": prev_path.name if prev_path else None,
            "previousDigestHashAlgorithm": HASH_ALGORITHM if prev_path else None,
            "previousDigestHashValue": (hashlib.sha256(prev_bytes).hexdigest()
                                        if prev_path else None),
            "previousDigestSignature": (prev or {}).get("digestSignature"),
            "digestPublicKeyArn": signer.key_arn,
            "digestPublicKeyFingerprint": signer.public_key_fingerprint,
            "digestSignatureAlgorithm": signer.algorithm,
            "logFiles": entries,
            "prunedLogFiles": pruned,
        }
        signature = signer.sign_digest(hashlib.sha256(canonical(doc)).digest())
        doc["digestSignature"] = base64.b64encode(signature).decode()
        path = audit_dir / DIGEST_DIR / name
        _write_atomic(path, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n")
        # Deleted only once the signed digest recording the pruning is durable.
        _unlink_all(leftover + [audit_dir / TRAIL_DIR / e["name"] for e in pruned])
        return path
