"""AES-256-GCM, the only symmetric primitive the KMS uses (the hazmat room).

``AEADKey(key).seal(nonce, plaintext, aad) -> ciphertext ‖ tag`` and ``open`` its inverse.
Every failure (wrong key, tag, AAD, nonce, truncated input) raises the one opaque
``CryptoError``: callers turn it into InvalidCiphertextException and learn nothing more
(pyca's ``InvalidToken`` practice). Nonces are 96 bits and chosen by the caller from an
injected ``rand`` so known-answer vectors are reproducible.
"""
from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["CryptoError", "AEADKey", "KEY_SIZES", "NONCE_SIZE", "TAG_SIZE"]

KEY_SIZES = (16, 32)
NONCE_SIZE = 12
TAG_SIZE = 16


class CryptoError(Exception):
    """Opaque: authentication or decryption failed."""


class AEADKey:
    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) not in KEY_SIZES:
            raise ValueError("AES-GCM keys are 16 or 32 bytes")
        self._aead = AESGCM(bytes(key))

    def __repr__(self) -> str:
        return "AEADKey(<secret>)"

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        if len(nonce) != NONCE_SIZE:
            raise ValueError("nonce must be 12 bytes")
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        if len(nonce) != NONCE_SIZE or len(ciphertext) < TAG_SIZE:
            raise CryptoError()
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError):
            raise CryptoError() from None
