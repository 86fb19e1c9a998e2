"""Sealed secrets at rest: AES-256-GCM with a version byte (the IAM access-key secrets).

Format (v1)::

    token = 0x01 ‖ nonce (12 bytes, random) ‖ AES-256-GCM(key, nonce, secret, aad) ‖ tag (16)

``aad`` binds the token to its owner (the access key id), so a token copied to another row
does not open. ``open_`` raises the one opaque ``CryptoError`` for every failure, including an
unknown version byte.
"""
from __future__ import annotations

import os
from typing import Callable

from kms.crypto.aead import NONCE_SIZE, TAG_SIZE, AEADKey, CryptoError

__all__ = ["VERSION", "KEY_SIZE", "seal", "open_", "CryptoError"]

VERSION = 0x01
KEY_SIZE = 32


def seal(key: bytes, plaintext: bytes, aad: bytes, *,
         rand: Callable[[int], bytes] = os.urandom) -> bytes:
    if len(key) != KEY_SIZE:
        raise ValueError("secretbox keys are 32 bytes")
    nonce = rand(NONCE_SIZE)
    return bytes([VERSION]) + nonce + AEADKey(key).seal(nonce, plaintext, aad)


def open_(key: bytes, token: bytes, aad: bytes) -> bytes:
    if len(key) != KEY_SIZE or len(token) < 1 + NONCE_SIZE + TAG_SIZE or token[0] != VERSION:
        raise CryptoError()
    return AEADKey(key).open(token[1:1 + NONCE_SIZE], token[1 + NONCE_SIZE:], aad)
