"""Sealed checksums: what an SSE-KMS or SSE-C record keeps instead of the object's (or a
part's) plaintext checksums, which are derived from the plaintext (DESIGN.md, envelope
encryption 5). SSE-S3 and unencrypted objects keep them in clear, as AWS returns them to any
reader (SSE-S3 is not bound to the caller).

Format ``coffer-checksums/1`` (sizes in bytes, integers big-endian)::

    k      = HKDF-SHA256(ikm = the object's data key (32), salt = none,
                         info = "coffer-checksums/1", L = 32)
    aad    = "coffer-checksums/1" || 0x00 || bucket || 0x00 || key || 0x00 || uint32(part)
                                                       ; part 0 = the whole object
    body   = JSON {"c": {ALGORITHM: base64 checksum}, "t": "FULL_OBJECT" | "COMPOSITE" | null}
             (sorted keys, no spaces)
    token  = base64( VERSION(1) = 0x01 || nonce(12) = rand || AES-256-GCM(k, nonce, body, aad) )

The data key is the one the object's stream is encrypted under (for Bucket Key objects the
per-object derived key), so a token opens only for a caller who could decrypt the object; the
HKDF info keeps ``k`` apart from the stream keys (info "coffer-sse/1"). The AAD binds the token
to its bucket, key and part, so a token copied onto another object or part does not open. Nonces
are random: one key seals at most a few thousand tokens (an upload's parts and their retries).

In the records: ``meta["sse"]["sealed_checksums"]`` = token and
``meta["sse"]["checksum_algorithms"]`` = the algorithm names (not secret: listings show them);
a part's record holds ``"sealed_checksums"`` beside its stream. Records written before this
format keep clear ``meta["checksums"]``; they are still read, and for SSE-KMS / SSE-C objects
returned only after the caller's decrypt, like sealed ones.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.sse.stream import SSEError

__all__ = ["CHECKSUMS_FORMAT", "CHECKSUMS_VERSION", "SEALED_FIELD", "ALGORITHMS_FIELD",
           "ChecksumSealError", "seal_checksums", "open_checksums", "checksum_algorithms"]

# Frozen constants of coffer-checksums/1: changing any of them means a version 2.
CHECKSUMS_FORMAT = "coffer-checksums/1"
CHECKSUMS_VERSION = 1
SEALED_FIELD = "sealed_checksums"
ALGORITHMS_FIELD = "checksum_algorithms"
_LABEL = CHECKSUMS_FORMAT.encode()
_NONCE_SIZE = 12
_MAX_TOKEN = 4096           # five algorithms of at most 64 base64 characters fit many times


class ChecksumSealError(SSEError):
    """A sealed checksum token did not open: wrong key, object or part, an unknown version or
    a damaged token. Carries no detail (crypto failures are opaque)."""

    def __init__(self) -> None:
        super().__init__("sealed checksums failed authentication")


def _aad(bucket: str, key: str, part: int) -> bytes:
    return b"\0".join([_LABEL, bucket.encode(), key.encode(), part.to_bytes(4, "big")])


def _aead(data_key: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=_LABEL).derive(bytes(data_key)))


def seal_checksums(data_key: bytes, bucket: str, key: str, part: int,
                   checksums: Mapping[str, str], checksum_type: str | None, *,
                   rand: Callable[[int], bytes] = os.urandom) -> str:
    """The token for ``checksums`` (algorithm -> base64) of object ``bucket/key`` (part 0) or
    of its part ``part``."""
    body = json.dumps({"c": dict(checksums), "t": checksum_type}, sort_keys=True,
                      separators=(",", ":")).encode()
    nonce = rand(_NONCE_SIZE)
    sealed = _aead(data_key).encrypt(nonce, body, _aad(bucket, key, part))
    return base64.b64encode(bytes([CHECKSUMS_VERSION]) + nonce + sealed).decode("ascii")


def open_checksums(data_key: bytes, bucket: str, key: str, part: int,
                   token: object) -> tuple[dict[str, str], str | None]:
    """(checksums, checksum type) sealed in ``token``. Raises ``ChecksumSealError``."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN:
        raise ChecksumSealError()
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ChecksumSealError() from None
    if len(raw) < 1 + _NONCE_SIZE + 16 or raw[0] != CHECKSUMS_VERSION:
        raise ChecksumSealError()
    try:
        body = _aead(data_key).decrypt(raw[1:1 + _NONCE_SIZE], raw[1 + _NONCE_SIZE:],
                                       _aad(bucket, key, part))
        doc = json.loads(body)
    except (InvalidTag, ValueError):
        raise ChecksumSealError() from None
    if not isinstance(doc, dict):
        raise ChecksumSealError()
    checksums, kind = doc.get("c"), doc.get("t")
    if not isinstance(checksums, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in checksums.items()):
        raise ChecksumSealError()
    return checksums, kind if isinstance(kind, str) else None


def checksum_algorithms(meta: Mapping[str, Any]) -> list[str]:
    """The checksum algorithms an object was stored with (clear or sealed), for listings."""
    clear = meta.get("checksums")
    if clear:
        return list(clear)
    record = meta.get("sse")
    names = record.get(ALGORITHMS_FIELD) if isinstance(record, Mapping) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
