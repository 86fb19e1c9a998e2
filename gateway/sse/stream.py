"""The ``coffer-sse/1`` object stream codec: segmented AES-256-GCM after Tink's AES-GCM-HKDF
streaming AEAD. It knows the format, not where keys come from.

Spec (all integers big-endian; sizes in bytes)::

    FORMAT      = "coffer-sse/1"                  ; metadata marker, HKDF info, AAD prefix
    TAG         = 16
    SEG         = segment_size, 4096 <= SEG <= 16 MiB (default 65536), recorded in metadata

    per stream (one object, or one upload of one multipart part):
        salt         = rand(32)                   ; drawn first
        nonce_prefix = rand(7)                    ; drawn second
        key          = HKDF-SHA256(ikm = data_key(32), salt = salt, info = FORMAT, L = 32)
        aad          = FORMAT || caller_aad       ; caller binds the stream to its object

    metadata (JSON, beside the object; never inside the data file):
        {"format": "coffer-sse/1", "segment_size": SEG,
         "salt": b64(salt), "nonce_prefix": b64(nonce_prefix)}

    plaintext P of n bytes -> N = max(1, ceil(n / SEG)) segments P_0 .. P_{N-1}
        |P_i| = SEG for i < N-1;  0 < |P_{N-1}| <= SEG, except n = 0: one empty P_0
    nonce_i     = nonce_prefix(7) || uint32(i) || uint8(i == N-1)          ; 12 bytes
    C_i         = AES-256-GCM(key, nonce_i, P_i, aad) = ciphertext(|P_i|) || tag(16)
    data file   = C_0 || C_1 || ... || C_{N-1}
    |data file| = n + 16 * N ;  C_i starts at i * (SEG + 16)
    N <= 2**32

The index and the last flag in the nonce make reordering, dropping, truncation and extension
fail authentication; the random salt gives each stream its own key, so the deterministic
nonces never repeat under one key. The decryptor learns N from the plaintext size in the
metadata and never releases a segment's plaintext before its tag verifies. Every
authentication failure raises the one opaque ``StreamAuthenticationError``.

A Range read decrypts only the covering segments: ``plan_range`` names the ciphertext bytes
to read and ``SegmentDecryptor.for_range`` trims the decrypted segments to the range.
"""
from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "FORMAT", "VERSION", "TAG_SIZE", "SALT_SIZE", "NONCE_PREFIX_SIZE", "DATA_KEY_SIZE",
    "DEFAULT_SEGMENT_SIZE", "MIN_SEGMENT_SIZE", "MAX_SEGMENT_SIZE", "MAX_SEGMENTS",
    "SSEError", "StreamAuthenticationError", "StreamMetadataError",
    "StreamParams", "new_stream_params", "SegmentEncryptor", "SegmentDecryptor",
    "RangePlan", "segment_count", "ciphertext_size", "plan_range",
]

# Frozen constants of coffer-sse/1: changing any of them means coffer-sse/2.
VERSION = 1
FORMAT = "coffer-sse/1"
_FORMAT_BYTES = FORMAT.encode()
TAG_SIZE = 16
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
DATA_KEY_SIZE = 32
DEFAULT_SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 4 * 1024
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
MAX_SEGMENTS = 2 ** 32                  # the segment index is a uint32 in the nonce
_NONCE = struct.Struct(">7sIB")         # prefix || uint32(i) || last flag
_META_KEYS = frozenset({"format", "segment_size", "salt", "nonce_prefix"})
_OPAQUE = "coffer-sse/1 stream failed authentication"

# cryptography >= 47 writes straight into our output buffer, which saves a copy per segment
# (about 5x the throughput on this path); older versions take the copying route.
_HAS_INTO = hasattr(AESGCM, "encrypt_into") and hasattr(AESGCM, "decrypt_into")


class SSEError(Exception):
    """Root of the server-side-encryption layer's errors."""


class StreamAuthenticationError(SSEError):
    """The stream is not what was encrypted under this key, parameters and AAD.

    Deliberately carries no detail: a flipped byte, a dropped, reordered or extra segment, a
    truncated stream, a wrong key, salt or AAD all look the same to the caller.
    """

    def __init__(self) -> None:
        super().__init__(_OPAQUE)


class StreamMetadataError(SSEError, ValueError):
    """The stream metadata record is malformed or names an unknown format version."""


@dataclass(frozen=True, slots=True)
class StreamParams:
    """Per-stream parameters, stored in the object's metadata via ``to_meta``."""

    salt: bytes
    nonce_prefix: bytes
    segment_size: int = DEFAULT_SEGMENT_SIZE
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise ValueError(f"unsupported stream format version {self.version!r}")
        if not isinstance(self.salt, bytes) or len(self.salt) != SALT_SIZE:
            raise ValueError(f"salt must be {SALT_SIZE} bytes")
        if not isinstance(self.nonce_prefix, bytes) or len(self.nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ValueError(f"nonce_prefix must be {NONCE_PREFIX_SIZE} bytes")
        _check_segment_size(self.segment_size)

    def to_meta(self) -> dict[str, Any]:
        """The JSON-safe metadata record (the format marker names the version)."""
        return {
            "format": FORMAT,
            "segment_size": self.segment_size,
            "salt": base64.b64encode(self.salt).decode("ascii"),
            "nonce_prefix": base64.b64encode(self.nonce_prefix).decode("ascii"),
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> StreamParams:
        """Parse a ``to_meta`` record. Raises ``StreamMetadataError`` on an unknown format
        or version, unknown or missing fields, bad base64, or out-of-range values."""
        if not isinstance(meta, Mapping):
            raise StreamMetadataError("stream metadata must be a mapping")
        if meta.get("format") != FORMAT:
            raise StreamMetadataError(f"unknown stream format {meta.get('format')!r}")
        if set(meta) != _META_KEYS:
            raise StreamMetadataError(f"stream metadata fields must be {sorted(_META_KEYS)}")
        seg = meta["segment_size"]
        if type(seg) is not int:
            raise StreamMetadataError("segment_size must be an integer")
        try:
            return cls(salt=_b64(meta["salt"]), nonce_prefix=_b64(meta["nonce_prefix"]),
                       segment_size=seg)
        except ValueError as e:
            raise StreamMetadataError(str(e)) from None


def new_stream_params(rand: Callable[[int], bytes] = os.urandom,
                      segment_size: int = DEFAULT_SEGMENT_SIZE) -> StreamParams:
    """Fresh parameters for one stream: ``salt = rand(32)``, then ``nonce_prefix = rand(7)``."""
    salt = rand(SALT_SIZE)
    prefix = rand(NONCE_PREFIX_SIZE)
    return StreamParams(salt=bytes(salt), nonce_prefix=bytes(prefix), segment_size=segment_size)


# -- sizes and ranges ---------------------------------------------------------------------------

def segment_count(plaintext_size: int, segment_size: int) -> int:
    """N = max(1, ceil(n / SEG)): an empty stream is one empty final segment."""
    _check_segment_size(segment_size)
    if plaintext_size < 0:
        raise ValueError("plaintext_size must be >= 0")
    n = max(1, -(-plaintext_size // segment_size))
    if n > MAX_SEGMENTS:
        raise ValueError("stream exceeds 2**32 segments")
    return n


def ciphertext_size(plaintext_size: int, segment_size: int) -> int:
    """Size of the data file: n + 16 * N."""
    return plaintext_size + TAG_SIZE * segment_count(plaintext_size, segment_size)


@dataclass(frozen=True, slots=True)
class RangePlan:
    """How to serve plaintext bytes [start, end) of one stream.

    Read ciphertext bytes [ct_start, ct_end) (segments first_segment..last_segment), feed them
    to ``SegmentDecryptor.for_range(..., plan)``; or decrypt them with a plain decryptor for
    those segments, drop ``skip_head`` bytes and keep ``take``.
    """

    first_segment: int
    last_segment: int
    total_segments: int
    ct_start: int
    ct_end: int
    skip_head: int
    take: int


def plan_range(plaintext_size: int, segment_size: int, start: int, end_exclusive: int) -> RangePlan:
    """Plan a read of plaintext [start, end_exclusive); needs 0 <= start < end <= size."""
    total = segment_count(plaintext_size, segment_size)
    if not 0 <= start < end_exclusive <= plaintext_size:
        raise ValueError(f"range [{start}, {end_exclusive}) is not inside "
                         f"[0, {plaintext_size})")
    stride = segment_size + TAG_SIZE
    first = start // segment_size
    last = (end_exclusive - 1) // segment_size
    return RangePlan(first_segment=first, last_segment=last, total_segments=total,
                     ct_start=first * stride,
                     ct_end=min((last + 1) * stride, ciphertext_size(plaintext_size, segment_size)),
                     skip_head=start - first * segment_size, take=end_exclusive - start)


# -- codec --------------------------------------------------------------------------------------

class SegmentEncryptor:
    """Encrypt one stream pushed in arbitrary pieces.

    ``update(data)`` returns the ciphertext of every segment it can already emit (a fresh
    ``bytearray``, possibly empty). One full segment's worth of plaintext is always held back,
    because its last flag depends on whether more data follows. ``finalize()`` returns the
    final segment (for an empty stream, the 16-byte empty final segment). Afterwards the
    encryptor is spent: further calls raise ``RuntimeError``. Raises ``SSEError`` past 2**32
    segments, ``ValueError`` for a data key that is not 32 bytes.
    """

    __slots__ = ("_aead", "_aad", "_prefix", "_seg", "_pending", "_fill", "_index", "_done")

    def __init__(self, data_key: bytes, params: StreamParams, aad: bytes = b"") -> None:
        self._aead = _segment_aead(data_key, params)
        self._aad = _FORMAT_BYTES + bytes(aad)
        self._prefix = params.nonce_prefix
        self._seg = params.segment_size
        self._pending = bytearray(self._seg)
        self._fill = 0
        self._index = 0
        self._done = False

    def update(self, data: bytes | bytearray | memoryview) -> bytearray:
        if self._done:
            raise RuntimeError("SegmentEncryptor already finalized")
        view = _byte_view(data)
        seg, fill = self._seg, self._fill
        total = fill + len(view)
        if total <= seg:
            self._pending[fill:total] = view
            self._fill = total
            return bytearray()
        count = (total - 1) // seg          # keeps 1..seg bytes back for the final segment
        self._reserve(count)
        stride = seg + TAG_SIZE
        out = bytearray(count * stride)
        pos = off = 0
        with memoryview(out) as dst:            # released so the caller may resize out
            if fill:
                off = seg - fill
                self._pending[fill:seg] = view[:off]
                self._seal(memoryview(self._pending), 0, dst[:stride])
                pos, count = stride, count - 1
            for _ in range(count):
                self._seal(view[off:off + seg], 0, dst[pos:pos + stride])
                off += seg
                pos += stride
        rest = len(view) - off
        self._pending[:rest] = view[off:]
        self._fill = rest
        return out

    def finalize(self) -> bytearray:
        if self._done:
            raise RuntimeError("SegmentEncryptor already finalized")
        self._done = True
        self._reserve(1)
        out = bytearray(self._fill + TAG_SIZE)
        with memoryview(out) as dst:
            self._seal(memoryview(self._pending)[:self._fill], 1, dst)
        self._pending = bytearray()
        return out

    def _reserve(self, count: int) -> None:
        if self._index + count > MAX_SEGMENTS:
            self._done = True
            raise SSEError("stream exceeds 2**32 segments")

    def _seal(self, src: memoryview, last: int, dst: memoryview) -> None:
        nonce = _NONCE.pack(self._prefix, self._index, last)
        if _HAS_INTO:
            self._aead.encrypt_into(nonce, src, self._aad, dst)
        else:
            dst[:] = self._aead.encrypt(nonce, src.tobytes(), self._aad)
        self._index += 1


class SegmentDecryptor:
    """Decrypt segments ``first_segment..last_segment`` of an N-segment stream fed in
    arbitrary pieces.

    ``total_segments`` is N, from the plaintext size in the metadata (``segment_count``);
    ``last_segment`` defaults to N - 1. Feed exactly the ciphertext of those segments (for a
    Range read, bytes [ct_start, ct_end) of ``plan_range``). ``update`` returns the plaintext
    of every segment whose tag has verified (a fresh ``bytearray``, possibly empty); the
    stream's final segment is held until ``finalize()``, which also checks nothing is
    missing. Any failure raises ``StreamAuthenticationError`` and spends the decryptor;
    plaintext of a failed call is never returned (plaintext returned by earlier calls was
    verified). Calls on a spent decryptor raise ``RuntimeError``.
    """

    __slots__ = ("_aead", "_aad", "_prefix", "_seg", "_pending", "_fill", "_index", "_eager_end",
                 "_last", "_total", "_skip", "_left", "_done")

    def __init__(self, data_key: bytes, params: StreamParams, aad: bytes = b"", *,
                 total_segments: int, first_segment: int = 0,
                 last_segment: int | None = None) -> None:
        if not 1 <= total_segments <= MAX_SEGMENTS:
            raise ValueError("total_segments must be in 1..2**32")
        last = total_segments - 1 if last_segment is None else last_segment
        if not 0 <= first_segment <= last < total_segments:
            raise ValueError("need 0 <= first_segment <= last_segment < total_segments")
        self._aead = _segment_aead(data_key, params)
        self._aad = _FORMAT_BYTES + bytes(aad)
        self._prefix = params.nonce_prefix
        self._seg = params.segment_size
        self._pending = bytearray(self._seg + TAG_SIZE)
        self._fill = 0
        self._index = first_segment
        self._last = last
        self._total = total_segments
        # Segments before the stream's final one are full-size: decrypt them on arrival.
        self._eager_end = min(last, total_segments - 2)
        self._skip = 0
        self._left: int | None = None
        self._done = False

    @classmethod
    def for_range(cls, data_key: bytes, params: StreamParams, plan: RangePlan,
                  aad: bytes = b"") -> SegmentDecryptor:
        """A decryptor for ``plan``'s ciphertext bytes whose output is exactly the range."""
        dec = cls(data_key, params, aad, total_segments=plan.total_segments,
                  first_segment=plan.first_segment, last_segment=plan.last_segment)
        dec._skip, dec._left = plan.skip_head, plan.take
        return dec

    def update(self, data: bytes | bytearray | memoryview) -> bytearray:
        if self._done:
            raise RuntimeError("SegmentDecryptor already finalized or failed")
        view = _byte_view(data)
        seg, fill = self._seg, self._fill
        stride = seg + TAG_SIZE
        avail = fill + len(view)
        count = min(avail // stride, max(0, self._eager_end - self._index + 1))
        rest = avail - count * stride
        after = self._index + count
        # What is left belongs to the next full segment (then rest < stride), to the stream's
        # final segment (held until finalize, at most one segment), or nowhere: an extension.
        if (after > self._last and rest) or (after == self._total - 1 and rest > stride):
            self._fail(bytearray())
            raise StreamAuthenticationError()
        out = bytearray(count * seg)
        pos = off = 0
        try:
            with memoryview(out) as dst:        # released before _trim resizes out
                if count and fill:
                    off = stride - fill
                    self._pending[fill:stride] = view[:off]
                    self._open(memoryview(self._pending), 0, dst[:seg])
                    pos, count = seg, count - 1
                for _ in range(count):
                    self._open(view[off:off + stride], 0, dst[pos:pos + seg])
                    off += stride
                    pos += seg
        except BaseException:
            self._fail(out)
            raise
        if pos:
            self._pending[:rest] = view[off:]
        else:
            self._pending[fill:avail] = view
        self._fill = rest
        return self._trim(out)

    def finalize(self) -> bytearray:
        if self._done:
            raise RuntimeError("SegmentDecryptor already finalized or failed")
        self._done = True
        fill = self._fill
        out = bytearray(max(0, fill - TAG_SIZE))
        try:
            if self._index == self._last + 1:
                if fill:
                    raise StreamAuthenticationError()
            elif self._index == self._total - 1 == self._last:
                # The final segment carries 1..SEG bytes, or 0 for the empty stream only.
                if fill < TAG_SIZE or (fill == TAG_SIZE and self._index > 0):
                    raise StreamAuthenticationError()
                with memoryview(out) as dst:
                    self._open(memoryview(self._pending)[:fill], 1, dst)
            else:
                raise StreamAuthenticationError()        # ended before the last segment
        except BaseException:
            self._fail(out)
            raise
        self._pending = bytearray()
        return self._trim(out)

    def _open(self, src: memoryview, last: int, dst: memoryview) -> None:
        nonce = _NONCE.pack(self._prefix, self._index, last)
        try:
            if _HAS_INTO:
                self._aead.decrypt_into(nonce, src, self._aad, dst)
            else:
                dst[:] = self._aead.decrypt(nonce, src.tobytes(), self._aad)
        except InvalidTag:
            raise StreamAuthenticationError() from None
        self._index += 1

    def _fail(self, out: bytearray) -> None:
        # decrypt_into may have written unverified plaintext before checking the tag.
        out[:] = bytes(len(out))
        self._done = True
        self._pending = bytearray()
        self._fill = 0

    def _trim(self, out: bytearray) -> bytearray:
        if out and self._skip:
            del out[:self._skip]        # bytearray drops a head in O(1)
            self._skip = 0
        if self._left is not None:
            if len(out) > self._left:
                del out[self._left:]
            self._left -= len(out)
        return out


# -- helpers ------------------------------------------------------------------------------------

def _segment_aead(data_key: bytes, params: StreamParams) -> AESGCM:
    if not isinstance(params, StreamParams):
        raise TypeError("params must be a StreamParams")
    if len(data_key) != DATA_KEY_SIZE:
        raise ValueError(f"data_key must be {DATA_KEY_SIZE} bytes")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=params.salt,
               info=_FORMAT_BYTES).derive(bytes(data_key))
    return AESGCM(key)


def _check_segment_size(segment_size: int) -> None:
    if type(segment_size) is not int or not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment_size must be an integer in "
                         f"{MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE}")


def _byte_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("invalid base64") from None
