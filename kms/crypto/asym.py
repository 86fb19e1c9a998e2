"""Asymmetric and HMAC primitives of the KMS (the hazmat room): key generation, signatures,
RSA-OAEP, ECDH and HMAC, with AWS KMS's algorithm names.

Keys cross this module's boundary as bytes only:

    private key  = PKCS#8 DER (unencrypted; the caller wraps it before it touches disk)
    public key   = X.509 SubjectPublicKeyInfo DER (what AWS GetPublicKey returns)
    HMAC key     = raw key bytes (HMAC_224/256/384/512 -> 28/32/48/64 bytes, as AWS)

Algorithm choices follow the AWS KMS Sign / Encrypt docs:

    RSASSA_PSS_SHA_n       PSS, MGF1(SHA-n), salt length = digest length
    RSASSA_PKCS1_V1_5_SHA_n  PKCS #1 v1.5 (RFC 8017 8.2)
    ECDSA_SHA_n            ECDSA, signature DER-encoded (RFC 3279 2.2.3 Ecdsa-Sig-Value)
    ED25519_SHA_512        pure Ed25519 (RFC 8032 5.1), RAW messages only
    RSAES_OAEP_SHA_n       OAEP with MGF1(SHA-n), empty label (RFC 8017 7.1)
    ECDH                   raw shared secret = x-coordinate (SEC 1 3.3.1), as AWS returns it

``MessageType DIGEST`` signs a caller-computed digest (``Prehashed``). Every failure of a
private-key operation or of a verification raises the one opaque ``CryptoError``; malformed
caller-supplied public keys raise ``ValueError``. Key generation draws from OpenSSL's CSPRNG
(cryptography offers no injectable source); HMAC key bytes come from the caller's ``rand``.
"""
from __future__ import annotations

import hmac as _hmac
import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from kms.crypto.aead import CryptoError

__all__ = [
    "RSA_SPECS", "EC_SPECS", "HMAC_SPECS", "SIGNING_HASH", "MAC_HASH",
    "generate_private", "public_der", "sign", "verify", "oaep_encrypt", "oaep_decrypt",
    "ecdh", "hmac_generate", "hmac_verify", "digest_size", "oaep_max_plaintext",
]

RSA_SPECS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_CURVES = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1,
           "ECC_NIST_P521": ec.SECP521R1, "ECC_SECG_P256K1": ec.SECP256K1}
EC_SPECS = frozenset(_CURVES) | {"ECC_NIST_EDWARDS25519"}
HMAC_SPECS = {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}

_HASHES = {"SHA_1": hashes.SHA1, "SHA_224": hashes.SHA224, "SHA_256": hashes.SHA256,
           "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}
SIGNING_HASH = {f"{fam}_{h}": h for fam in ("RSASSA_PSS", "RSASSA_PKCS1_V1_5", "ECDSA")
                for h in ("SHA_256", "SHA_384", "SHA_512")}
SIGNING_HASH["ED25519_SHA_512"] = "SHA_512"
MAC_HASH = {f"HMAC_{h}": h for h in ("SHA_224", "SHA_256", "SHA_384", "SHA_512")}
_OAEP_HASH = {"RSAES_OAEP_SHA_1": "SHA_1", "RSAES_OAEP_SHA_256": "SHA_256"}


def _hash(name: str) -> hashes.HashAlgorithm:
    return _HASHES[name]()


def digest_size(signing_algorithm: str) -> int:
    return _hash(SIGNING_HASH[signing_algorithm]).digest_size


def oaep_max_plaintext(spec: str, algorithm: str) -> int:
    """RFC 8017 7.1.1: k - 2*hLen - 2 (2048/SHA-1 -> 214, as the Encrypt doc lists)."""
    return RSA_SPECS[spec] // 8 - 2 * _hash(_OAEP_HASH[algorithm]).digest_size - 2


def generate_private(spec: str) -> bytes:
    """A new private key of AWS key spec ``spec`` (RSA_* / ECC_*) as PKCS#8 DER."""
    if spec in RSA_SPECS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_SPECS[spec])
    elif spec in _CURVES:
        key = ec.generate_private_key(_CURVES[spec]())
    elif spec == "ECC_NIST_EDWARDS25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"no asymmetric key spec {spec}")
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _private(der: bytes):
    try:
        return serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CryptoError() from None


def public_der(private_der: bytes) -> bytes:
    return _private(private_der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _sig_params(algorithm: str, digest: bool):
    h = _hash(SIGNING_HASH[algorithm])
    chosen = utils.Prehashed(h) if digest else h
    if algorithm.startswith("RSASSA_PSS"):
        # AWS: "salt length equal to the length of the hash" (Sign API, SigningAlgorithm).
        return (padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), chosen)
    if algorithm.startswith("RSASSA_PKCS1"):
        return (padding.PKCS1v15(), chosen)
    return (ec.ECDSA(chosen),)


def sign(private_der: bytes, algorithm: str, message: bytes, *, digest: bool = False) -> bytes:
    """Signature over ``message`` (or over the precomputed digest when ``digest``)."""
    key = _private(private_der)
    try:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            if digest or algorithm != "ED25519_SHA_512":
                raise CryptoError()
            return key.sign(message)
        return key.sign(message, *_sig_params(algorithm, digest))
    except (ValueError, TypeError):
        raise CryptoError() from None


def verify(private_der: bytes, algorithm: str, message: bytes, signature: bytes, *,
           digest: bool = False) -> None:
    """Raise ``CryptoError`` unless ``signature`` is valid; returns nothing on success."""
    pub = _private(private_der).public_key()
    try:
        if isinstance(pub, ed25519.Ed25519PublicKey):
            if digest or algorithm != "ED25519_SHA_512":
                raise CryptoError()
            pub.verify(signature, message)
        else:
            pub.verify(signature, message, *_sig_params(algorithm, digest))
    except (InvalidSignature, ValueError, TypeError):
        raise CryptoError() from None


def _oaep(algorithm: str) -> padding.OAEP:
    h = _hash(_OAEP_HASH[algorithm])
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def oaep_encrypt(private_der: bytes, algorithm: str, plaintext: bytes) -> bytes:
    key = _private(private_der)
    try:
        return key.public_key().encrypt(plaintext, _oaep(algorithm))
    except (ValueError, TypeError, AttributeError):
        raise CryptoError() from None


def oaep_decrypt(private_der: bytes, algorithm: str, ciphertext: bytes) -> bytes:
    key = _private(private_der)
    try:
        return key.decrypt(ciphertext, _oaep(algorithm))
    except (ValueError, TypeError, AttributeError):
        raise CryptoError() from None


def ecdh(private_der: bytes, peer_public_der: bytes) -> bytes:
    """ECDH shared secret with a peer's SubjectPublicKeyInfo. Raises ``ValueError`` when the
    peer key is malformed or not on this key's curve."""
    key = _private(private_der)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CryptoError()
    try:
        peer = serialization.load_der_public_key(peer_public_der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("PublicKey is not a valid DER SubjectPublicKeyInfo") from None
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != key.curve.name:
        raise ValueError("PublicKey is not on the curve of the KMS key")
    try:
        return key.exchange(ec.ECDH(), peer)
    except ValueError:
        raise ValueError("PublicKey is not a valid point") from None


def hmac_generate(key: bytes, algorithm: str, message: bytes) -> bytes:
    name = MAC_HASH[algorithm].replace("_", "").lower()
    return _hmac.new(key, message, getattr(hashlib, name)).digest()


def hmac_verify(key: bytes, algorithm: str, message: bytes, mac: bytes) -> None:
    """Raise ``CryptoError`` unless ``mac`` matches (constant-time comparison)."""
    if not _hmac.compare_digest(hmac_generate(key, algorithm, message), mac):
        raise CryptoError()
