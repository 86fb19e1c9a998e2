"""Flexible checksums: the ``x-amz-checksum-<alg>`` family.

Values on the wire are ``base64(big-endian digest)``: 4 bytes for CRC32 and CRC32C, 8 for
CRC64NVME, 20 for SHA1, 32 for SHA256 (S3 User Guide, "Checking object integrity").
CRC32C and CRC64NVME come from ``awscrt`` (AWS's own runtime); the stdlib has neither.

    ck = make_checksum("crc32"); ck.update(b"..."); ck.b64()  -> "ojUr7w=="
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from typing import Protocol

from awscrt import checksums as _crt

__all__ = [
    "ALGORITHMS", "HEADERS", "HEADER_PREFIX", "DIGEST_SIZES", "Checksum",
    "make_checksum", "normalize_algorithm", "algorithm_for_header", "is_valid_b64",
]

ALGORITHMS: tuple[str, ...] = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
HEADER_PREFIX = "x-amz-checksum-"
# ALGORITHM -> header (and trailer) name.
HEADERS: dict[str, str] = {alg: HEADER_PREFIX + alg.lower() for alg in ALGORITHMS}
DIGEST_SIZES: dict[str, int] = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
_BY_HEADER = {h: alg for alg, h in HEADERS.items()}


class Checksum(Protocol):
    algorithm: str

    def update(self, data: bytes | memoryview) -> None: ...
    def digest(self) -> bytes: ...
    def b64(self) -> str: ...


class _CRC:
    __slots__ = ("algorithm", "_fn", "_value", "_size")

    def __init__(self, algorithm: str, fn, size: int) -> None:
        self.algorithm = algorithm
        self._fn = fn
        self._value = 0
        self._size = size

    def update(self, data: bytes | memoryview) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


class _Hash:
    __slots__ = ("algorithm", "_h")

    def __init__(self, algorithm: str, name: str) -> None:
        self.algorithm = algorithm
        self._h = hashlib.new(name)

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def b64(self) -> str:
        return base64.b64encode(self._h.digest()).decode("ascii")


def _crc32c(data, value):
    return _crt.crc32c(data, value)


def _crc64nvme(data, value):
    return _crt.crc64nvme(data, value)


def normalize_algorithm(name: str) -> str | None:
    """``"crc32"`` / ``"CRC32"`` -> ``"CRC32"``; None when the name is not a known algorithm."""
    alg = name.strip().upper()
    return alg if alg in DIGEST_SIZES else None


def algorithm_for_header(header_name: str) -> str | None:
    """``"x-amz-checksum-crc32"`` (any case) -> ``"CRC32"``; None for other names."""
    return _BY_HEADER.get(header_name.strip().lower())


def make_checksum(algorithm: str) -> Checksum:
    """A fresh running checksum; raises ValueError for an unknown algorithm name."""
    alg = normalize_algorithm(algorithm)
    if alg == "CRC32":
        return _CRC(alg, zlib.crc32, 4)
    if alg == "CRC32C":
        return _CRC(alg, _crc32c, 4)
    if alg == "CRC64NVME":
        return _CRC(alg, _crc64nvme, 8)
    if alg == "SHA1":
        return _Hash(alg, "sha1")
    if alg == "SHA256":
        return _Hash(alg, "sha256")
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


def is_valid_b64(algorithm: str, value: str) -> bool:
    """True when ``value`` is canonical base64 of exactly the algorithm's digest size."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == DIGEST_SIZES[algorithm]
