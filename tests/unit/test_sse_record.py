"""coffer-checksums/1 (gateway/sse/record.py): a known-answer vector recomputed from the spec,
and every way a token must fail to open failing with the one opaque ``ChecksumSealError``."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.sse.record import (ChecksumSealError, checksum_algorithms, open_checksums,
                                seal_checksums)

KEY = bytes(range(32))
SUMS = {"CRC32": "NSRBwg=="}
# seal_checksums(KEY, "bucket", "key", 0, SUMS, "FULL_OBJECT", rand = 0x07 * n)
VECTOR = ("AQcHBwcHBwcHBwcHB83S/9QHa2YNOtjro+JjNJg753QBzf/o4ScUfrZ/p2Idw2xOaD9gMPKhp90Zvw+W"
          "9T20lmpSW/asyXdTHQ==")


def _sevens(n: int) -> bytes:
    return b"\x07" * n


def test_known_answer_matches_the_spec():
    k = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
             info=b"coffer-checksums/1").derive(KEY)
    aad = b"coffer-checksums/1\0bucket\0key\0" + (0).to_bytes(4, "big")
    body = json.dumps({"c": SUMS, "t": "FULL_OBJECT"}, sort_keys=True,
                      separators=(",", ":")).encode()
    expected = base64.b64encode(b"\x01" + _sevens(12)
                                + AESGCM(k).encrypt(_sevens(12), body, aad)).decode()
    assert expected == VECTOR
    assert seal_checksums(KEY, "bucket", "key", 0, SUMS, "FULL_OBJECT", rand=_sevens) == VECTOR
    assert open_checksums(KEY, "bucket", "key", 0, VECTOR) == (SUMS, "FULL_OBJECT")


def test_round_trip_per_part_and_composite():
    token = seal_checksums(KEY, "b", "k", 7, {"SHA256": "x" * 44, "CRC32": "y"}, None)
    assert open_checksums(KEY, "b", "k", 7, token) == ({"SHA256": "x" * 44, "CRC32": "y"}, None)
    token = seal_checksums(KEY, "b", "k", 0, {"CRC32C": "z-3"}, "COMPOSITE")
    assert open_checksums(KEY, "b", "k", 0, token) == ({"CRC32C": "z-3"}, "COMPOSITE")


@pytest.mark.parametrize("bucket,key,part,data_key", [
    ("other", "key", 0, KEY), ("bucket", "other", 0, KEY), ("bucket", "key", 1, KEY),
    ("bucket", "key", 0, bytes(32)), ("bucketk", "ey", 0, KEY)])
def test_bound_to_its_key_bucket_object_and_part(bucket, key, part, data_key):
    with pytest.raises(ChecksumSealError):
        open_checksums(data_key, bucket, key, part, VECTOR)


def _flip(token: str, i: int) -> str:
    raw = bytearray(base64.b64decode(token))
    raw[i] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("token", [
    None, 7, "", "not base64!", "AA==", base64.b64encode(b"\x02" + bytes(40)).decode(),
    _flip(VECTOR, 0), _flip(VECTOR, 5), _flip(VECTOR, 20), _flip(VECTOR, -1), VECTOR[:-8],
    "A" * 5000, "é"])
def test_bad_tokens_fail_opaquely(token):
    with pytest.raises(ChecksumSealError) as ei:
        open_checksums(KEY, "bucket", "key", 0, token)
    assert str(ei.value) == "sealed checksums failed authentication"


def test_listing_algorithms_clear_or_sealed():
    assert checksum_algorithms({"checksums": {"CRC32": "a"}}) == ["CRC32"]
    assert checksum_algorithms({"checksums": {}, "sse": {"checksum_algorithms": ["SHA256"]}}) \
        == ["SHA256"]
    assert checksum_algorithms({"sse": {"checksum_algorithms": "bad"}}) == []
    assert checksum_algorithms({}) == []
