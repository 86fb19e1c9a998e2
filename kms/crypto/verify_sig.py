"""Signature verification with only a public key (what ``coffer audit verify`` needs).

``kms.crypto.asym.verify`` works from the private key inside the KMS; this module takes an
X.509 SubjectPublicKeyInfo (DER or PEM), as GetPublicKey exports it, so a verifier never needs
the KMS or its root key. Algorithm names are AWS KMS's (``ECDSA_SHA_256``,
``RSASSA_PSS_SHA_256``, ...); ``digest=True`` verifies a signature made with
``MessageType DIGEST`` over a caller-computed digest.
"""
from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from kms.crypto.asym import SIGNING_HASH, _sig_params

__all__ = ["verify_with_public_key", "public_der_to_pem", "public_pem_to_der", "fingerprint"]


def public_der_to_pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN PUBLIC KEY-----\n" + b"\n".join(lines) + b"\n-----END PUBLIC KEY-----\n"


def public_pem_to_der(pem: bytes) -> bytes:
    key = serialization.load_pem_public_key(pem)
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(der: bytes) -> str:
    """SHA-256 of the SubjectPublicKeyInfo DER, hex."""
    return hashlib.sha256(der).hexdigest()


def verify_with_public_key(public_key: bytes, algorithm: str, message: bytes, signature: bytes,
                           *, digest: bool = False) -> bool:
    """True when ``signature`` is valid for ``message`` under ``public_key`` (DER or PEM)."""
    if algorithm not in SIGNING_HASH:
        return False
    try:
        if public_key.lstrip().startswith(b"-----BEGIN"):
            pub = serialization.load_pem_public_key(public_key)
        else:
            pub = serialization.load_der_public_key(public_key)
    except (ValueError, UnsupportedAlgorithm):
        return False
    try:
        if isinstance(pub, ed25519.Ed25519PublicKey):
            if digest or algorithm != "ED25519_SHA_512":
                return False
            pub.verify(signature, message)
        else:
            pub.verify(signature, message, *_sig_params(algorithm, digest))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
