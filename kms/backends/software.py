"""Software key backend: 256-bit AES versions, persisted wrapped by the root key.

Each version's record is ``root.wrap(material, aad)`` with
``aad = b"coffer-kms-material/1\\x00" ‖ utf8(key_arn) ‖ b"\\x00" ‖ uint32_be(version)``, so a
record copied onto another key or version does not unwrap. Unwrapped material is kept in a
bounded LRU cache keyed by (ARN, version): one unwrap per version per process instead of one
per call (Cosmian KMS keeps unwrapped objects in an in-memory cache for the same reason).

Asymmetric and HMAC keys (``kms.asymmetric``) keep their private material (PKCS#8 DER or HMAC
key bytes) in the same kind of record, ``root.wrap(material, private_aad(arn, version))`` with
the label ``b"coffer-kms-private/1\x00"``, so such a record never unwraps as an AES version (or
the reverse). ``wrap_private`` / ``unwrap_private`` are the software backend's extension; a
backend without them cannot hold asymmetric keys. Private material is not cached.
"""
from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable

from kms.backends.base import MaterialRef
from kms.crypto.aead import AEADKey
from kms.crypto.rootkey import RootKey, RootKeyError

__all__ = ["SoftwareBackend", "material_aad", "private_aad"]

_MATERIAL_SIZE = 32
_AAD_LABEL = b"coffer-kms-material/1\x00"
_PRIVATE_LABEL = b"coffer-kms-private/1\x00"
_IMPORT_LABEL = b"coffer-kms-import/1\x00"
_SECRET_LABEL = b"coffer-kms-secret/1\x00"
# AAD of the readiness probe (self_test): no stored record is ever wrapped under it.
_PROBE_LABEL = b"coffer-kms-ready-probe/1\x00"


def material_aad(key_arn: str, version: int) -> bytes:
    return _AAD_LABEL + key_arn.encode("utf-8") + b"\x00" + struct.pack(">I", version)


def private_aad(key_arn: str, version: int) -> bytes:
    return _PRIVATE_LABEL + key_arn.encode("utf-8") + b"\x00" + struct.pack(">I", version)


class SoftwareBackend:
    name = "software"

    def __init__(self, root: RootKey, *, rand: Callable[[int], bytes] = os.urandom,
                 cache_size: int = 1024) -> None:
        self._root = root
        self._rand = rand
        self._cache: OrderedDict[tuple[str, int], AEADKey] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def generate(self, key_arn: str, version: int) -> bytes:
        material = self._rand(_MATERIAL_SIZE)
        record = self._root.wrap(material, material_aad(key_arn, version))
        self._remember((key_arn, version), AEADKey(material))
        return record

    def seal(self, ref: MaterialRef, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._key(ref).seal(nonce, plaintext, aad)

    def open(self, ref: MaterialRef, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        return self._key(ref).open(nonce, ciphertext, aad)

    def wrap_private(self, key_arn: str, version: int, material: bytes) -> bytes:
        """The record to persist for a version's asymmetric or HMAC material."""
        return self._root.wrap(material, private_aad(key_arn, version))

    def unwrap_private(self, ref: MaterialRef) -> bytes:
        """Raises ``CryptoError`` if the record is not this key version's private material."""
        return self._root.unwrap(ref.record, private_aad(ref.key_arn, ref.version))

    def adopt(self, key_arn: str, version: int, material: bytes) -> bytes:
        """Like ``generate`` for caller-supplied (imported) 256-bit material."""
        if len(material) != _MATERIAL_SIZE:
            raise ValueError("imported symmetric material is 32 bytes")
        record = self._root.wrap(material, material_aad(key_arn, version))
        self._remember((key_arn, version), AEADKey(material))
        return record

    def wrap_import(self, name: str, secret: bytes) -> bytes:
        """Seal an import secret (wrapping private key, import token) bound to ``name``."""
        return self._root.wrap(secret, _IMPORT_LABEL + name.encode("utf-8"))

    def unwrap_import(self, name: str, record: bytes) -> bytes:
        """Raises ``CryptoError`` unless ``record`` is ``wrap_import(name, ...)``."""
        return self._root.unwrap(record, _IMPORT_LABEL + name.encode("utf-8"))

    def wrap_secret(self, name: str, secret: bytes) -> bytes:
        """Seal a stored credential (a custom key store's PIN) bound to ``name``."""
        return self._root.wrap(secret, _SECRET_LABEL + name.encode("utf-8"))

    def unwrap_secret(self, name: str, record: bytes) -> bytes:
        """Raises ``CryptoError`` unless ``record`` is ``wrap_secret(name, ...)``."""
        return self._root.unwrap(record, _SECRET_LABEL + name.encode("utf-8"))

    def self_test(self) -> None:
        """Wrap and unwrap a random probe under the root key (an HSM root key does this in
        its token). Raises the root key's error, or RootKeyError on a wrong round trip."""
        probe = self._rand(16)
        if self._root.unwrap(self._root.wrap(probe, _PROBE_LABEL), _PROBE_LABEL) != probe:
            raise RootKeyError("the root key did not round-trip a probe")

    def forget(self, key_arn: str, version: int) -> None:
        with self._lock:
            self._cache.pop((key_arn, version), None)

    def _key(self, ref: MaterialRef) -> AEADKey:
        slot = (ref.key_arn, ref.version)
        with self._lock:
            key = self._cache.get(slot)
            if key is not None:
                self._cache.move_to_end(slot)
                return key
        # Unwrap outside the lock; two threads racing on a miss both get the same material.
        key = AEADKey(self._root.unwrap(ref.record, material_aad(ref.key_arn, ref.version)))
        self._remember(slot, key)
        return key

    def _remember(self, slot: tuple[str, int], key: AEADKey) -> None:
        with self._lock:
            self._cache[slot] = key
            self._cache.move_to_end(slot)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
