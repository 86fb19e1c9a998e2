import base64
import zlib

import pytest

from gateway.auth.checksums import (ALGORITHMS, HEADERS, algorithm_for_header, is_valid_b64,
                                    make_checksum)

CHECK = b"123456789"


@pytest.mark.parametrize("alg,value", [
    ("CRC32", 0xCBF43926), ("crc32c", 0xE3069283), ("Crc64Nvme", 0xAE8B14860A799888)])
def test_crc_check_values(alg, value):
    c = make_checksum(alg)
    c.update(CHECK[:4])
    c.update(CHECK[4:])
    assert int.from_bytes(c.digest(), "big") == value


def test_hashes():
    import hashlib
    for alg, name in (("SHA1", "sha1"), ("sha256", "sha256")):
        c = make_checksum(alg)
        c.update(CHECK)
        assert c.digest() == hashlib.new(name, CHECK).digest()


def test_reference_small_object():
    data = b"hello world, this is a small object\n"
    c = make_checksum("CRC32")
    c.update(data)
    assert c.b64() == "ojUr7w=="
    c = make_checksum("CRC32C")
    c.update(data)
    assert c.b64() == "B7fJ6A=="
    assert c.b64() == base64.b64encode(make_digest_crc32c(data)).decode()


def make_digest_crc32c(data):
    from awscrt import checksums
    return checksums.crc32c(data).to_bytes(4, "big")


def test_empty_crc32_is_zero():
    assert make_checksum("crc32").b64() == base64.b64encode(
        zlib.crc32(b"").to_bytes(4, "big")).decode()


def test_headers_and_validation():
    assert HEADERS["CRC64NVME"] == "x-amz-checksum-crc64nvme"
    assert set(HEADERS) == set(ALGORITHMS)
    assert algorithm_for_header("X-Amz-Checksum-CRC32C") == "CRC32C"
    assert algorithm_for_header("x-amz-checksum-md5") is None
    assert is_valid_b64("CRC32", "ojUr7w==")
    assert not is_valid_b64("CRC32", "ojUr7w")
    assert not is_valid_b64("CRC64NVME", "ojUr7w==")
    assert not is_valid_b64("SHA1", "!!!!")
    with pytest.raises(ValueError):
        make_checksum("MD5")
