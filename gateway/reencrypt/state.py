"""The resume state of ``coffer s3 reencrypt`` and the run's target.

State file ``coffer-reencrypt-state/1`` (JSON; default ``./.coffer-reencrypt-<bucket>.json``)::

    {"format": "coffer-reencrypt-state/1", "bucket": str, "prefix": str,
     "target": {"mode": "aws:kms" | "AES256", "keyArn": str | null, "bucketKey": bool},
     "onlyUnencrypted": bool,
     "after": str | null,          # every key <= after (UTF-8 binary order) has been handled
     "counts": {"reencrypted" | "skipped" | "failed": int}, "failed": [{"key", "code"}]}

It is replaced atomically (temp file, fsync, rename) after each object, in listing order; a
resumed run lists with StartAfter = after. A key not yet passed is examined again, and a HEAD
showing it already under the target skips it, so a run stopped at any instant (even between a
commit and the state write) converges. The file is removed when a run completes; a later run
starts over and re-examines (cheaply) everything, failures included. An unknown format, or a
state for another bucket, prefix or target, is refused.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.fs.atomic import write_atomic

__all__ = ["STATE_FORMAT", "ReencryptError", "Target", "RunState"]

STATE_FORMAT = "coffer-reencrypt-state/1"
MAX_FAILED_KEPT = 100


def _short(value: Any) -> str:
    """A bounded rendering of a value read from a state file, for an error message."""
    if value is None or isinstance(value, (str, bool, int)):
        return repr(value)[:120]
    return f"<{type(value).__name__}>"


class ReencryptError(Exception):
    """A setup problem that stops the run before any object is touched (exit status 2)."""


@dataclass(frozen=True, slots=True)
class Target:
    mode: str                                   # "aws:kms" or "AES256"
    key_arn: str | None = None
    bucket_key: bool = False

    def doc(self) -> dict[str, Any]:
        return {"mode": self.mode, "keyArn": self.key_arn, "bucketKey": self.bucket_key}

    def describe(self) -> str:
        return "SSE-S3" if self.mode == "AES256" else f"aws:kms {self.key_arn}"


@dataclass(slots=True)
class RunState:
    bucket: str
    prefix: str
    target: Target
    only_unencrypted: bool
    after: str | None = None
    counts: Counter = field(default_factory=Counter)
    failed: list[dict[str, str]] = field(default_factory=list)

    def doc(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "bucket": self.bucket, "prefix": self.prefix,
                "target": self.target.doc(), "onlyUnencrypted": self.only_unencrypted,
                "after": self.after, "counts": dict(self.counts), "failed": self.failed}

    def save(self, path: Path) -> None:
        """Replace ``path`` atomically and durably (temp file, fsync, rename, fsync dir)."""
        write_atomic(path, json.dumps(self.doc(), indent=1).encode(),
                     f".{path.name}.{os.getpid()}.tmp")

    @classmethod
    def load(cls, path: Path, fresh: RunState) -> RunState:
        """The saved state of the same run as ``fresh``, or ``fresh`` when there is none.
        Raises ReencryptError."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return fresh
        except OSError as exc:
            raise ReencryptError(f"cannot read the state file {path}: {exc}") from exc
        return cls.parse(data, str(path), fresh)

    @classmethod
    def parse(cls, data: bytes, where: str, fresh: RunState) -> RunState:
        """A state file's bytes -> the state to resume ``fresh`` from. Raises ReencryptError
        (and nothing else) for anything but a state of this very run."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ReencryptError(f"{where} is not a {STATE_FORMAT} state file") from exc
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise ReencryptError(f"{where} is not a {STATE_FORMAT} state file")
        same = (doc.get("bucket") == fresh.bucket and doc.get("prefix") == fresh.prefix
                and doc.get("target") == fresh.target.doc()
                and doc.get("onlyUnencrypted") is fresh.only_unencrypted)
        if not same:
            target = doc.get("target") if isinstance(doc.get("target"), dict) else {}
            theirs = (f"bucket {_short(doc.get('bucket'))}, prefix {_short(doc.get('prefix'))}"
                      f", target {_short(target.get('mode'))} {_short(target.get('keyArn'))}")
            raise ReencryptError(f"the state file {where} belongs to another run ({theirs}): "
                                 "finish that run, remove the file, or pass --state")
        after, counts, failed = doc.get("after"), doc.get("counts", {}), doc.get("failed", [])
        if (not (after is None or isinstance(after, str)) or not isinstance(counts, dict)
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                           for v in counts.values())
                or not isinstance(failed, list)):
            raise ReencryptError(f"{where} is damaged (after, counts or failed)")
        kept = [{"key": f["key"][:1024], "code": f.get("code", "")[:64]}
                for f in failed if isinstance(f, dict) and isinstance(f.get("key"), str)
                and isinstance(f.get("code", ""), str)][:MAX_FAILED_KEPT]
        return cls(fresh.bucket, fresh.prefix, fresh.target, fresh.only_unencrypted, after,
                   Counter(counts), kept)
