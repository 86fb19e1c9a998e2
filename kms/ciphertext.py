"""The KMS ciphertext blob (what Encrypt and GenerateDataKey return as ``CiphertextBlob``).

Format ``coffer-kms-ct/1`` (frozen; any change is a new version byte that old blobs still read)::

    blob    = header ‖ ciphertext ‖ tag
    header  = 0x01                        version / magic (1 byte)
              ‖ uint8  len(key_id)        1..255
              ‖ key_id                    ASCII; a UUID (36) or an ``mrk-`` id (longer)
              ‖ uint32_be key_version     >= 1
              ‖ nonce                     12 bytes, random per blob
    ciphertext                            len(plaintext) bytes (AES-256-GCM)
    tag                                   16 bytes
    AAD     = header ‖ canonical(encryption_context)        (kms.context)

Binding the header into the AAD means a blob whose key id or version was swapped for another
one fails authentication even if the attacker can make that key decrypt (the MinIO DARE and
AWS Encryption SDK practice of authenticating every header byte). Nothing here knows where
keys come from; ``kms.service`` resolves the key and ``kms.backends`` runs the AEAD.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from kms.errors import InvalidCiphertextException

__all__ = ["VERSION", "NONCE_SIZE", "TAG_SIZE", "MIN_SIZE", "CiphertextBlob", "header",
           "serialize", "deserialize", "aad"]

VERSION = 0x01
NONCE_SIZE = 12
TAG_SIZE = 16
_U32 = struct.Struct(">I")
MIN_SIZE = 1 + 1 + 1 + 4 + NONCE_SIZE + TAG_SIZE
_INVALID = "The ciphertext is invalid."


@dataclass(frozen=True, slots=True)
class CiphertextBlob:
    key_id: str
    key_version: int
    nonce: bytes
    ciphertext: bytes      # AES-GCM output: encrypted bytes ‖ 16-byte tag

    def header(self) -> bytes:
        return header(self.key_id, self.key_version, self.nonce)


def header(key_id: str, key_version: int, nonce: bytes) -> bytes:
    kid = key_id.encode("ascii")
    if not 1 <= len(kid) <= 255:
        raise ValueError("key id must be 1..255 ASCII bytes")
    if not 1 <= key_version <= 0xFFFFFFFF:
        raise ValueError("key version out of range")
    if len(nonce) != NONCE_SIZE:
        raise ValueError("nonce must be 12 bytes")
    return bytes([VERSION, len(kid)]) + kid + _U32.pack(key_version) + nonce


def serialize(blob: CiphertextBlob) -> bytes:
    if len(blob.ciphertext) < TAG_SIZE:
        raise ValueError("ciphertext shorter than the tag")
    return blob.header() + blob.ciphertext


def deserialize(data: bytes) -> CiphertextBlob:
    """Parse a blob; anything malformed raises InvalidCiphertextException."""
    if len(data) < MIN_SIZE or data[0] != VERSION:
        raise InvalidCiphertextException(_INVALID)
    n = data[1]
    end = 2 + n
    if n == 0 or len(data) < end + 4 + NONCE_SIZE + TAG_SIZE:
        raise InvalidCiphertextException(_INVALID)
    try:
        key_id = data[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidCiphertextException(_INVALID) from None
    (version,) = _U32.unpack_from(data, end)
    if version == 0:
        raise InvalidCiphertextException(_INVALID)
    nonce = data[end + 4:end + 4 + NONCE_SIZE]
    return CiphertextBlob(key_id, version, nonce, bytes(data[end + 4 + NONCE_SIZE:]))


def aad(blob: CiphertextBlob, canonical_context: bytes) -> bytes:
    return blob.header() + canonical_context
