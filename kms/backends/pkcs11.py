"""HSM key backend: key versions that live in a PKCS#11 token (custom key stores).

The token generates each key (``kms.crypto.pkcs11.Token.generate_key``: AES-256, sensitive,
non-extractable, label = key ARN) and runs every AES-GCM with it; Coffer keeps only a
reference. Record format ``coffer-hsm-ref/1`` (what ``key_versions.material`` holds)::

    0x01 ‖ uint16_be(len(token label)) ‖ utf8(token label)
         ‖ uint16_be(len(object label)) ‖ utf8(object label)

Nothing in it is secret or lets anyone derive the key. The ciphertext blob format does not
change: ``seal`` returns ``ciphertext ‖ tag`` exactly as the software backend does, so
``kms.ciphertext`` and every caller are the same for both.
"""
from __future__ import annotations

import struct

from kms.backends.base import MaterialRef
from kms.crypto.aead import CryptoError
from kms.crypto.pkcs11 import HSMError, Token
from kms.errors import KeyUnavailableException

__all__ = ["HSMBackend", "REF_VERSION", "encode_ref", "decode_ref"]

REF_VERSION = 0x01


def encode_ref(token_label: str, object_label: str) -> bytes:
    out = bytes([REF_VERSION])
    for part in (token_label, object_label):
        raw = part.encode("utf-8")
        out += struct.pack(">H", len(raw)) + raw
    return out


def decode_ref(record: bytes) -> tuple[str, str]:
    """(token label, object label); raises ``ValueError`` for anything else."""
    if not record or record[0] != REF_VERSION:
        raise ValueError("not a coffer-hsm-ref/1 record")
    parts, i = [], 1
    for _ in range(2):
        (n,) = struct.unpack_from(">H", record, i)
        parts.append(record[i + 2:i + 2 + n].decode("utf-8"))
        i += 2 + n
    if i != len(record):
        raise ValueError("trailing bytes in coffer-hsm-ref/1 record")
    return parts[0], parts[1]


class HSMBackend:
    """The KeyBackend of one connected custom key store."""

    name = "pkcs11"

    def __init__(self, token: Token) -> None:
        self._token = token

    @property
    def token(self) -> Token:
        return self._token

    def generate(self, key_arn: str, version: int) -> bytes:
        """Raises ``HSMError`` (the caller maps it to the operation's AWS error)."""
        label = key_arn if version == 1 else f"{key_arn}#{version}"
        self._token.generate_key(label)
        return encode_ref(self._token.label, label)

    def seal(self, ref: MaterialRef, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        _, label = decode_ref(ref.record)
        try:
            return self._token.encrypt_gcm(label, nonce, plaintext, aad)
        except HSMError:
            raise KeyUnavailableException(f"{ref.key_arn} is unavailable.") from None

    def open(self, ref: MaterialRef, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            _, label = decode_ref(ref.record)
        except ValueError:
            raise CryptoError() from None
        try:
            return self._token.decrypt_gcm(label, nonce, ciphertext, aad)
        except HSMError:
            raise KeyUnavailableException(f"{ref.key_arn} is unavailable.") from None

    def forget(self, key_arn: str, version: int) -> None:
        self._token.destroy_key(key_arn if version == 1 else f"{key_arn}#{version}")
