"""Validate the trail against its digest chain with only the public key.

Each trail file is reported as ``valid``, ``modified`` (hash differs; ``records reordered``
when the same records are present in another order), ``deleted`` (listed by a digest, gone),
``pruned`` (listed by a digest, gone, and a later digest with a valid signature records its
pruning under the retention setting: not a failure), or ``not yet covered`` (no digest lists
it yet).

Intent records (``kms.audit.events``): a state change writes one before it commits and its
outcome record names it. An intent that no outcome names is reported in ``intents`` as
``no outcome`` (the server stopped, or could not write the outcome, between the two: the change
may or may not have committed; look it up by its requestID). It is not tampering and does not
fail the verification. Intents whose outcome is older than the files read (pruned) are not
reported; the scan streams the files and holds only the unresolved intents. Each digest is ``valid``, ``modified``
(signature invalid, unreadable, or its hash/signature differs from what the next digest
recorded) or ``deleted`` (a later digest names it as its predecessor and it is gone).
The caller passes the signature check (``kms.crypto.verify_sig.verify_with_public_key``)
since this package imports nothing else from ``kms``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from kms.audit.digest import (DIGEST_VERSIONS, canonical, digest_files, digest_sort_key,
                              load_digest, pruned_files, sorted_lines_hash)
from kms.audit.events import INTENT
from kms.audit.sinks import iter_file, trail_files

__all__ = ["Finding", "Report", "verify_trail", "VALID", "MODIFIED", "DELETED", "NOT_COVERED",
           "PRUNED", "NO_OUTCOME"]

VALID, MODIFIED, DELETED, NOT_COVERED = "valid", "modified", "deleted", "not yet covered"
PRUNED, NO_OUTCOME = "pruned", "no outcome"

SignatureCheck = Callable[[bytes, str, bytes, bytes], bool]   # (public key, alg, msg, sig)


@dataclass
class Finding:
    kind: str          # "file" | "digest"
    name: str
    status: str
    detail: str = ""
    digest: str | None = None


@dataclass
class Report:
    files: list[Finding] = field(default_factory=list)
    digests: list[Finding] = field(default_factory=list)
    intents: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.status in (VALID, NOT_COVERED, PRUNED)
                   for f in self.files + self.digests)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.status] = out.get(f.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": [asdict(f) for f in self.files],
                "digests": [asdict(f) for f in self.digests],
                "intents": [asdict(f) for f in self.intents], "counts": self.counts()}


def _in_range(start: str | None, end: str | None, lo: str | None, hi: str | None) -> bool:
    """ISO-8601 'Z' strings compare lexically."""
    if lo is not None and end is not None and end < lo:
        return False
    if hi is not None and start is not None and start > hi:
        return False
    return True


def _stamp_iso(name: str) -> str:
    s = name.split("-", 1)[0]          # YYYYMMDDTHHMMSSZ
    return f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}Z" if len(s) == 16 else ""


def verify_trail(audit_dir: Path, public_key: bytes, check: SignatureCheck, *,
                 fingerprint: str | None = None, start: str | None = None,
                 end: str | None = None) -> Report:
    """Verify the digests whose period overlaps [start, end] (ISO times; None = open) and the
    trail files they list, and list files no digest covers."""
    audit_dir = Path(audit_dir)
    report = Report()
    docs: dict[str, dict[str, Any] | None] = {}
    raw: dict[str, bytes] = {}
    for p in digest_files(audit_dir):
        raw[p.name] = p.read_bytes()
        try:
            docs[p.name] = load_digest(p)
        except (OSError, ValueError):
            docs[p.name] = None
    selected = [n for n, d in docs.items()
                if d is None or _in_range(d.get("digestStartTime"), d.get("digestEndTime"),
                                          start, end)]
    digest_status: dict[str, Finding] = {}
    for name in selected:
        doc = docs[name]
        if doc is None:
            digest_status[name] = Finding("digest", name, MODIFIED, "not a readable digest")
            continue
        try:
            sig = base64.b64decode(doc.get("digestSignature") or "", validate=True)
        except (binascii.Error, ValueError):
            sig = b""
        alg = str(doc.get("digestSignatureAlgorithm") or "")
        if fingerprint and doc.get("digestPublicKeyFingerprint") != fingerprint:
            digest_status[name] = Finding("digest", name, MODIFIED,
                                          "signed by another key than the public key given")
        elif not sig or not check(public_key, alg, canonical(doc), sig):
            digest_status[name] = Finding("digest", name, MODIFIED, "signature is not valid")
        elif doc.get("digestVersion", "1.0") not in DIGEST_VERSIONS:
            digest_status[name] = Finding("digest", name, MODIFIED,
                                          f"unknown digestVersion {doc.get('digestVersion')}")
        elif doc.get("digestFile") not in (None, name):
            digest_status[name] = Finding("digest", name, MODIFIED,
                                          f"renamed (signed as {doc.get('digestFile')})")
        else:
            digest_status[name] = Finding("digest", name, VALID)
    # The chain: each digest names its predecessor with its hash and signature.
    heads = 0
    for name in selected:
        doc = docs[name]
        if doc is None:
            continue
        prev = doc.get("previousDigestFile")
        if prev is None:
            heads += 1
            if heads > 1:
                digest_status[name].detail = (digest_status[name].detail or
                                              "starts a new chain")
            continue
        if prev not in docs:
            if prev not in digest_status:
                digest_status[prev] = Finding("digest", prev, DELETED,
                                              f"named as predecessor by {name}")
            continue
        if (hashlib.sha256(raw[prev]).hexdigest() != doc.get("previousDigestHashValue")
                or (docs[prev] or {}).get("digestSignature")
                != doc.get("previousDigestSignature")):
            f = digest_status.get(prev)
            if f is None or f.status == VALID:
                digest_status[prev] = Finding("digest", prev, MODIFIED,
                                              f"differs from the hash recorded by {name}")
    report.digests = sorted(digest_status.values(), key=lambda f: digest_sort_key(f.name))
    # Pruning counts only when recorded by a digest whose signature holds (any period).
    def trusted(name: str) -> bool:
        f = digest_status.get(name)
        if f is not None:
            return f.status == VALID
        doc = docs.get(name)
        try:
            sig = base64.b64decode((doc or {}).get("digestSignature") or "", validate=True)
        except (binascii.Error, ValueError):
            return False
        return bool(doc and sig and check(public_key, str(doc.get("digestSignatureAlgorithm")
                                                          or ""), canonical(doc), sig))
    pruned = pruned_files((n, d) for n, d in docs.items()
                          if d and d.get("prunedLogFiles") and trusted(n))
    # The files each selected digest lists.
    trail_dir = audit_dir / "trail"
    listed: set[str] = set()
    for name in selected:
        doc = docs[name]
        if doc is None:
            continue
        for entry in doc.get("logFiles") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            fname = entry["name"]
            listed.add(fname)
            path = trail_dir / fname
            if "/" in fname or not path.is_file():
                if fname in pruned and "/" not in fname:
                    report.files.append(Finding("file", fname, PRUNED, "removed under the "
                                                f"retention setting (recorded by "
                                                f"{pruned[fname][0]})", name))
                    continue
                report.files.append(Finding("file", fname, DELETED, "listed by the digest, "
                                            "missing from the trail", name))
                continue
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == entry.get("hashValue"):
                report.files.append(Finding("file", fname, VALID, "", name))
                continue
            if sorted_lines_hash(data) == entry.get("sortedRecordsHash"):
                detail = "records reordered"
            elif len(data) < int(entry.get("size") or 0):
                detail = f"hash differs (truncated: {len(data)} of {entry.get('size')} bytes)"
            elif len(data) > int(entry.get("size") or 0):
                detail = f"hash differs (grew: {len(data)} of {entry.get('size')} bytes)"
            else:
                detail = "hash differs"
            report.files.append(Finding("file", fname, MODIFIED, detail, name))
    # Every file any digest lists (also out of range) is covered.
    all_listed = set(listed)
    for d in docs.values():
        for entry in (d or {}).get("logFiles") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                all_listed.add(entry["name"])
    for path in trail_files(audit_dir):
        if path.name in all_listed:
            continue
        when = _stamp_iso(path.name)
        if _in_range(when, when, start, end):
            report.files.append(Finding("file", path.name, NOT_COVERED,
                                        "no digest lists it yet"))
    report.intents = unresolved_intents(audit_dir)
    return report


def unresolved_intents(audit_dir: Path) -> list[Finding]:
    """Intent records that no outcome record names (streamed, oldest file first)."""
    pending: dict[str, Finding] = {}
    for path in trail_files(audit_dir):
        for rec in iter_file(path, intents=True):
            if rec.get("eventType") == INTENT:
                eid = rec.get("eventID")
                if isinstance(eid, str):
                    pending[eid] = Finding(
                        "intent", str(rec.get("eventName") or ""), NO_OUTCOME,
                        f"requestID {rec.get('requestID')} at {rec.get('eventTime')} "
                        f"in {path.name}")
            elif isinstance(rec.get("intentEventID"), str):
                pending.pop(rec["intentEventID"], None)
    return list(pending.values())
