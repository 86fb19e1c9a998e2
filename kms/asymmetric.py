"""Asymmetric (RSA, ECC) and HMAC key operations: Sign/Verify, GetPublicKey, GenerateMac /
VerifyMac, DeriveSharedSecret, GenerateDataKeyPair, GenerateRandom, RSA Encrypt/Decrypt. Mixed
into ``kms.service.KMS``; uses its plumbing (``_call``, ``_resolve``, ``_store``, ``_backend``)."""
from __future__ import annotations

__all__ = ["AsymmetricOps"]


class AsymmetricOps:
    """Operations filled in by the KMS API issue."""
