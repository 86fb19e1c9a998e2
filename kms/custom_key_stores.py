"""CloudHSM-style custom key stores (Origin AWS_CLOUDHSM) over PKCS#11. Mixed into
``kms.service.KMS``; uses its plumbing (``_call``, ``_resolve``, ``_store``)."""
from __future__ import annotations

__all__ = ["CustomKeyStoreOps"]


class CustomKeyStoreOps:
    """Operations filled in by the HSM issue."""
