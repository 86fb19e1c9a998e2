"""Key lifecycle operations beyond create/enable/disable: rotation schedules, tags, key policies,
imported key material, last usage. Mixed into ``kms.service.KMS``; uses its plumbing
(``_call``, ``_resolve``, ``_store``, ``_clock``)."""
from __future__ import annotations

__all__ = ["LifecycleOps"]


class LifecycleOps:
    """Operations filled in by the KMS API issue."""
