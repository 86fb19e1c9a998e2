"""kms.crypto.import_wrap: RFC 5649 known answers, and every AWS wrapping algorithm both ways."""
from __future__ import annotations

import os

import pytest

from kms.crypto import import_wrap as w
from kms.crypto.aead import CryptoError

# RFC 5649 section 6 (192-bit KEK).
KEK = bytes.fromhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
VECTORS = [
    ("c37b7e6492584340bed12207808941155068f738",
     "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"),
    ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
]


@pytest.mark.parametrize("key,wrapped", VECTORS)
def test_kwp_known_answers(key, wrapped):
    assert w.kwp_wrap(KEK, bytes.fromhex(key)).hex() == wrapped
    assert w.kwp_unwrap(KEK, bytes.fromhex(wrapped)).hex() == key
    bad = bytearray.fromhex(wrapped)
    bad[0] ^= 1
    with pytest.raises(CryptoError):
        w.kwp_unwrap(KEK, bytes(bad))


@pytest.fixture(scope="module")
def pair():
    return w.generate("RSA_2048")


@pytest.mark.parametrize("algorithm", w.WRAPPING_ALGORITHMS)
def test_wrap_unwrap(pair, algorithm):
    material = os.urandom(32)
    blob = w.wrap(algorithm, pair.public_der, material, os.urandom(32))
    assert w.unwrap(algorithm, pair.private_der, blob) == material
    other = [a for a in w.WRAPPING_ALGORITHMS if a != algorithm][0]
    with pytest.raises(CryptoError):
        w.unwrap(other, pair.private_der, blob)
    with pytest.raises(CryptoError):
        w.unwrap(algorithm, pair.private_der, blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(CryptoError):
        w.unwrap("RSAES_PKCS1_V1_5", pair.private_der, blob)


def test_repr_hides_private_key(pair):
    assert "secret" in repr(pair) and pair.private_der.hex() not in repr(pair)
