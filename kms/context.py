"""Encryption context: validation and canonical AAD bytes.

Format ``coffer-ec/1`` (frozen; a change is a new version byte)::

    canonical(ctx) = 0x01
                     ‖ for (k, v) in sorted(ctx.items(), key=utf8(k)):
                           uint32_be(len(utf8(k))) ‖ utf8(k) ‖ uint32_be(len(utf8(v))) ‖ utf8(v)

An empty or absent context is the single byte 0x01. Length prefixes make the encoding
injective (local-kms and moto concatenate ``k‖v`` without separators, so ``{"ab": "c"}`` and
``{"a": "bc"}`` collide; kms-contract.md (a) "EC / AAD binding"). Sorting by UTF-8 bytes makes
pair order irrelevant, as in AWS where only the pairs must match exactly (DG/concepts).

Limits: keys and values are strings (AWS treats the EC as string->string); keys are non-empty;
the UTF-8 size of all keys and values together is at most 8192 bytes (AWS's EC quota).
"""
from __future__ import annotations

import struct
from collections.abc import Mapping

from kms.errors import ValidationException

__all__ = ["VERSION", "MAX_CONTEXT_BYTES", "validate", "canonical"]

VERSION = 0x01
MAX_CONTEXT_BYTES = 8192
_U32 = struct.Struct(">I")


def validate(context: Mapping[str, str] | None) -> dict[str, str]:
    """Return a plain dict copy of ``context`` or raise ValidationException."""
    if context is None:
        return {}
    if not isinstance(context, Mapping):
        raise ValidationException("EncryptionContext must be a map of strings to strings")
    total = 0
    out: dict[str, str] = {}
    for k, v in context.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValidationException("EncryptionContext keys and values must be strings")
        if not k:
            raise ValidationException("EncryptionContext keys must not be empty")
        try:
            total += len(k.encode("utf-8")) + len(v.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValidationException("EncryptionContext must be valid Unicode") from None
        out[k] = v
    if total > MAX_CONTEXT_BYTES:
        raise ValidationException(
            f"EncryptionContext is {total} bytes; the limit is {MAX_CONTEXT_BYTES}")
    return out


def canonical(context: Mapping[str, str] | None) -> bytes:
    """Canonical AAD bytes of a (validated) context."""
    parts = [bytes([VERSION])]
    items = sorted(((k.encode("utf-8"), v.encode("utf-8")) for k, v in (context or {}).items()),
                   key=lambda kv: kv[0])
    for k, v in items:
        parts += (_U32.pack(len(k)), k, _U32.pack(len(v)), v)
    return b"".join(parts)
