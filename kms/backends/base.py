"""The KeyBackend contract (software today; PKCS#11 in a later issue)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["KeyBackend", "MaterialRef"]


@dataclass(frozen=True, slots=True)
class MaterialRef:
    """Names one key version and carries the backend's persisted record for it."""

    key_arn: str
    version: int
    record: bytes = field(repr=False)


@runtime_checkable
class KeyBackend(Protocol):
    """Generates key versions and runs AES-256-GCM with them.

    ``generate`` returns the opaque record the store persists for a new version (for the
    software backend the material wrapped by the root key; for an HSM a handle). Raw material
    never leaves the backend. ``seal`` returns ciphertext ‖ tag. ``open`` raises
    ``kms.crypto.aead.CryptoError`` on any failure, whatever its cause. ``forget`` drops cached
    material and destroys backend-held objects of a version whose key was deleted.
    ``KeyUnavailableException`` signals a backend that cannot be reached (retryable).
    """

    name: str

    def generate(self, key_arn: str, version: int) -> bytes: ...

    def seal(self, ref: MaterialRef, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes: ...

    def open(self, ref: MaterialRef, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes: ...

    def forget(self, key_arn: str, version: int) -> None: ...
