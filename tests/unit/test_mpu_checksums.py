"""Multipart checksum math and parsers (gateway/s3/mpu_checksums.py): the CRC combination
against whole-buffer CRCs (zlib for CRC32, awscrt for CRC32C / CRC64NVME), and seeded fuzzing of
what a Complete request brings (the XML's part checksums, the checksum headers), which may
raise only S3Error."""
from __future__ import annotations

import base64
import zlib

import pytest
from awscrt import checksums as crt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.s3 import mpu_checksums as mc
from gateway.s3.errors import S3Error

FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
CRC = {"CRC32": (zlib.crc32, 4), "CRC32C": (crt.crc32c, 4), "CRC64NVME": (crt.crc64nvme, 8)}


@pytest.mark.parametrize("alg", sorted(CRC))
@pytest.mark.parametrize("sizes", [[1], [0, 3], [3, 0], [1, 1, 1], [4096, 7, 65537]])
def test_full_object_checksum_is_the_crc_of_the_concatenation(alg, sizes):
    fn, width = CRC[alg]
    parts = [bytes((i * 31 + j) % 251 for j in range(n)) for i, n in enumerate(sizes)]
    values = [base64.b64encode(fn(p).to_bytes(width, "big")).decode() for p in parts]
    expect = base64.b64encode(fn(b"".join(parts)).to_bytes(width, "big")).decode()
    assert mc.full_object_checksum(alg, list(zip(values, sizes))) == expect


def test_known_answers():
    # CRC32("123456789") = 0xCBF43926, CRC32C = 0xE3069283, CRC64NVME = 0xAE8B14860A799888
    # (the check values of the CRC catalogue), combined from "1234" and "56789".
    for alg, check in (("CRC32", 0xCBF43926), ("CRC32C", 0xE3069283),
                       ("CRC64NVME", 0xAE8B14860A799888)):
        fn = CRC[alg][0]
        assert mc.combine(alg, fn(b"1234"), fn(b"56789"), 5) == check


def test_composite_value():
    raw = [zlib.crc32(b"a").to_bytes(4, "big"), zlib.crc32(b"b").to_bytes(4, "big")]
    values = [base64.b64encode(r).decode() for r in raw]
    whole = base64.b64encode(zlib.crc32(b"".join(raw)).to_bytes(4, "big")).decode()
    assert mc.composite_checksum("CRC32", values) == f"{whole}-2"


_TAGS = ["<CompleteMultipartUpload>", "</CompleteMultipartUpload>", "<Part>", "</Part>",
         "<PartNumber>", "</PartNumber>", "<ChecksumCRC32>", "</ChecksumCRC32>",
         "<ChecksumSHA256>", "</ChecksumSHA256>", "1", "-1", "99999999999999999999", "AAAA",
         "&amp;", "<!DOCTYPE x>", "\x00", " ", "=", "é"]


@pytest.mark.fuzz
@FUZZ
@given(st.binary(max_size=24))
def test_fuzz_parse_complete_checksums(draw):
    # One drawn byte string mapped onto tokens: one draw keeps 10,000 cases fast.
    body = "".join(_TAGS[b % len(_TAGS)] for b in draw)
    try:
        out = mc.parse_complete_checksums(body.encode())
    except S3Error:
        return
    assert all(isinstance(n, int) for n in out)


_NAMES = ["x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-amz-checksum-type",
          "x-amz-checksum-md5", "x-amz-checksum-", "X-Amz-Checksum-CRC64NVME"]
_VALUES = ["AAAAAA==", "AAAAAA==-2", "-", "", "=", "FULL_OBJECT", "composite", "\x00", "é",
           "AAAAAAAAAAA=", "a-b-c"]


@pytest.mark.fuzz
@FUZZ
@given(st.binary(min_size=3, max_size=9))
def test_fuzz_checksum_headers(draw):
    alg = [None, "CRC32", "SHA256", "CRC64NVME"][draw[0] % 4]
    kind = [None, mc.COMPOSITE, mc.FULL_OBJECT][draw[1] % 3]
    value = [None, "AAAAAA==", "AAAAAA==-2"][draw[2] % 3]
    rest = draw[3:]
    headers = {_NAMES[a % len(_NAMES)]: _VALUES[b % len(_VALUES)]
               for a, b in zip(rest[::2], rest[1::2])}
    for check in (lambda: mc.creation_type(headers, alg),
                  lambda: mc.complete_type(headers, kind),
                  lambda: mc.verify_complete_checksum(headers, alg, kind, value)):
        try:
            check()
        except S3Error:
            pass
