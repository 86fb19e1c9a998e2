"""S3 Bucket Keys: the gateway's cache of bucket-level data keys, one principal's at a time.

AWS (S3 UG, "Reducing the cost of SSE-KMS with Amazon S3 Bucket Keys"; "Changes to note
before enabling an S3 Bucket Key") derives object keys from a short-lived bucket-level key
whose encryption context is the bucket ARN, and the KMS calls that make or open it are made as
the requester, so CloudTrail shows them under the requester with the bucket ARN.

Whose rights an entry carries and when it stops being valid (STYLE.md rule 13):
- An entry belongs to one principal: its key starts with the caller's principal ARN and
  account, and it is filled only by that principal's own ``GenerateDataKey`` / ``Decrypt``
  (a real KMS call, audited as AWS records it). Anonymous callers are never cached.
- A hit never stands in for the KMS's decision: before the cached key serves a request the
  gateway asks ``KMS.authorize_key_use`` as the caller (key policy, grants, identity policies,
  conditions, key state). A Deny added, a grant revoked, a key disabled or scheduled for
  deletion wins on the very next request, in every worker (the decision reads the shared
  database). A refused reuse is audited as the operation's failed call.
- An entry lives ``ttl`` seconds (default 300) after it was filled, and no longer: expired
  entries are dropped from memory when they expire (a timer on the event loop) and on every
  access; the cache holds at most ``max_entries`` (oldest dropped first). A dropped entry's
  key bytes are overwritten (best effort: the KMS's own copy is freed by the collector).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable

__all__ = ["BucketKeyCache", "CachedBucketKey", "DEFAULT_TTL", "DEFAULT_MAX_ENTRIES"]

DEFAULT_TTL = 300.0
DEFAULT_MAX_ENTRIES = 4096


@dataclass(slots=True)
class CachedBucketKey:
    plaintext: bytearray = field(repr=False)
    blob: bytes
    key_arn: str
    expires: float

    def wipe(self) -> None:
        self.plaintext[:] = bytes(len(self.plaintext))


class BucketKeyCache:
    """Entries in fill order, which is also expiry order (one ttl, a monotonic clock), so
    dropping the expired ones only looks at the front."""

    def __init__(self, *, ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: dict[Hashable, CachedBucketKey] = {}
        self._timer: asyncio.TimerHandle | None = None
        # Lookups answered from the cache / that found nothing live (gateway/metrics.py).
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> CachedBucketKey | None:
        """The live entry for ``key``; the caller must still have the KMS authorize its use."""
        self.sweep()
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, key: Hashable, plaintext: bytes, blob: bytes,
            key_arn: str) -> CachedBucketKey:
        self.sweep()
        old = self._entries.pop(key, None)
        if old is not None:
            old.wipe()
        entry = CachedBucketKey(plaintext=bytearray(plaintext), blob=blob, key_arn=key_arn,
                                expires=self._clock() + self._ttl)
        self._entries[key] = entry
        while len(self._entries) > self._max:
            self._entries.pop(next(iter(self._entries))).wipe()
        self._arm()
        return entry

    def sweep(self) -> None:
        """Drop (and wipe) every expired entry."""
        now = self._clock()
        while self._entries:
            first = next(iter(self._entries))
            if self._entries[first].expires > now:
                break
            self._entries.pop(first).wipe()

    def clear(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for entry in self._entries.values():
            entry.wipe()
        self._entries.clear()

    def _arm(self) -> None:
        """Wake up when the oldest entry expires, so an idle gateway drops it too."""
        if self._timer is not None or not self._entries:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return          # no loop (synchronous use): accesses still sweep
        first = next(iter(self._entries.values()))
        delay = max(0.0, first.expires - self._clock()) + 0.01
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.sweep()
        self._arm()
