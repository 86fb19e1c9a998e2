"""Wrapping keys for imported key material (AWS KMS GetParametersForImport / ImportKeyMaterial).

The KMS makes an RSA key pair per GetParametersForImport call, hands out the public key (DER
SubjectPublicKeyInfo) and keeps the private key (DER PKCS#8, then wrapped by the root key).
The caller wraps its key material with one of AWS's wrapping algorithms [DG/importing-keys,
"Select a wrapping algorithm"]::

    RSAES_OAEP_SHA_1          blob = RSA-OAEP(pub, MGF1-SHA-1,   SHA-1,   material)
    RSAES_OAEP_SHA_256        blob = RSA-OAEP(pub, MGF1-SHA-256, SHA-256, material)
    RSA_AES_KEY_WRAP_SHA_1    blob = RSA-OAEP(pub, SHA-1,   k) ‖ AES-KWP(k, material)
    RSA_AES_KEY_WRAP_SHA_256  blob = RSA-OAEP(pub, SHA-256, k) ‖ AES-KWP(k, material)

where ``k`` is a fresh 256-bit AES key, the OAEP part is exactly modulus-size bytes long
(256/384/512 for RSA_2048/3072/4096) and AES-KWP is RFC 5649 (CKM_RSA_AES_KEY_WRAP, PKCS#11
v2.40 section 2.1.21). OAEP labels are empty. Every unwrap failure raises the one opaque
``CryptoError``.
"""
from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import (InvalidUnwrap, aes_key_unwrap_with_padding,
                                                    aes_key_wrap_with_padding)

from kms.crypto.aead import CryptoError

__all__ = ["WRAPPING_KEY_BITS", "WRAPPING_ALGORITHMS", "WrappingKeyPair", "generate", "unwrap",
           "wrap", "kwp_wrap", "kwp_unwrap"]

WRAPPING_KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_HASHES = {"SHA_1": hashes.SHA1, "SHA_256": hashes.SHA256}
WRAPPING_ALGORITHMS = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1",
                       "RSA_AES_KEY_WRAP_SHA_256")


class WrappingKeyPair:
    """A fresh wrapping key: ``public_der`` for the caller, ``private_der`` to be sealed."""

    __slots__ = ("public_der", "private_der")

    def __init__(self, public_der: bytes, private_der: bytes) -> None:
        self.public_der = public_der
        self.private_der = private_der

    def __repr__(self) -> str:
        return "WrappingKeyPair(<secret>)"


def generate(spec: str) -> WrappingKeyPair:
    """A new RSA wrapping key of ``spec`` (RSA_2048 / RSA_3072 / RSA_4096)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=WRAPPING_KEY_BITS[spec])
    return WrappingKeyPair(
        key.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo),
        key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()))


def _oaep(algorithm: str) -> padding.OAEP:
    h = _HASHES["SHA_256" if algorithm.endswith("SHA_256") else "SHA_1"]()
    return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)


def unwrap(algorithm: str, private_der: bytes, blob: bytes) -> bytes:
    """The key material inside ``blob``; ``CryptoError`` on any failure."""
    if algorithm not in WRAPPING_ALGORITHMS:
        raise CryptoError()
    try:
        key = serialization.load_der_private_key(private_der, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CryptoError()
        if algorithm.startswith("RSAES_OAEP_"):
            return key.decrypt(blob, _oaep(algorithm))
        n = key.key_size // 8
        if len(blob) <= n:
            raise CryptoError()
        kek = key.decrypt(blob[:n], _oaep(algorithm))
        if len(kek) not in (16, 24, 32):
            raise CryptoError()
        return kwp_unwrap(kek, blob[n:])
    except CryptoError:
        raise
    except (ValueError, TypeError):
        raise CryptoError() from None


def wrap(algorithm: str, public_der: bytes, material: bytes, aes_key: bytes) -> bytes:
    """The caller's side (tests and the demo): wrap ``material`` for ``public_der``.
    ``aes_key`` is the ephemeral key of the RSA_AES_KEY_WRAP algorithms (ignored otherwise)."""
    pub = serialization.load_der_public_key(public_der)
    if not isinstance(pub, rsa.RSAPublicKey) or algorithm not in WRAPPING_ALGORITHMS:
        raise ValueError("unsupported wrapping key or algorithm")
    if algorithm.startswith("RSAES_OAEP_"):
        return pub.encrypt(material, _oaep(algorithm))
    return pub.encrypt(aes_key, _oaep(algorithm)) + kwp_wrap(aes_key, material)


def kwp_wrap(kek: bytes, data: bytes) -> bytes:
    """AES Key Wrap with Padding, RFC 5649."""
    return aes_key_wrap_with_padding(kek, data)


def kwp_unwrap(kek: bytes, blob: bytes) -> bytes:
    """Inverse of ``kwp_wrap``; ``CryptoError`` on an integrity failure."""
    try:
        return aes_key_unwrap_with_padding(kek, blob)
    except (InvalidUnwrap, ValueError):
        raise CryptoError() from None
