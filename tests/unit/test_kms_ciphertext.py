"""Ciphertext blob format: golden and must-fail vectors (tests/vectors/kms_ciphertext.json)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms import ciphertext as ct
from kms import context as ec
from kms.crypto.aead import AEADKey, CryptoError
from kms.errors import InvalidCiphertextException

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "kms_ciphertext.json").read_text())


def _open(blob_hex: str, material_hex: str, context: dict) -> bytes:
    blob = ct.deserialize(bytes.fromhex(blob_hex))
    return AEADKey(bytes.fromhex(material_hex)).open(
        blob.nonce, blob.ciphertext, ct.aad(blob, ec.canonical(context)))


@pytest.mark.parametrize("v", VECTORS["golden"], ids=lambda v: v["description"])
def test_golden_decrypts(v):
    assert _open(v["blob_hex"], v["key_material_hex"], v["context"]).hex() == v["plaintext_hex"]
    blob = ct.deserialize(bytes.fromhex(v["blob_hex"]))
    assert (blob.key_id, blob.key_version, blob.nonce.hex()) == (
        v["key_id"], v["key_version"], v["nonce_hex"])
    assert ct.serialize(blob).hex() == v["blob_hex"]


@pytest.mark.parametrize("v", VECTORS["golden"], ids=lambda v: v["description"])
def test_golden_independent_assembly(v):
    """Rebuild each blob from the spec with struct and pyca's AESGCM directly."""
    kid = v["key_id"].encode()
    nonce = bytes.fromhex(v["nonce_hex"])
    header = b"\x01" + bytes([len(kid)]) + kid + struct.pack(">I", v["key_version"]) + nonce
    aad = header + ec.canonical(v["context"])
    sealed = AESGCM(bytes.fromhex(v["key_material_hex"])).encrypt(
        nonce, bytes.fromhex(v["plaintext_hex"]), aad)
    assert (header + sealed).hex() == v["blob_hex"]


@pytest.mark.parametrize("v", VECTORS["must_fail"], ids=lambda v: v["description"])
def test_must_fail(v):
    with pytest.raises((InvalidCiphertextException, CryptoError)):
        _open(v["blob_hex"], v["key_material_hex"], v["context"])


def test_must_fail_covers_every_region():
    names = " ".join(v["description"] for v in VECTORS["must_fail"])
    for region in ("version byte", "key id length", "key id", "key version", "nonce",
                   "ciphertext", "tag", "truncated", "unknown version", "swapped"):
        assert region in names


def test_mrk_ids_round_trip_untruncated():
    kid = "mrk-" + "ab" * 30
    blob = ct.CiphertextBlob(kid, 3, bytes(12), bytes(20))
    assert ct.deserialize(ct.serialize(blob)) == blob


@pytest.mark.parametrize("n", range(0, ct.MIN_SIZE))
def test_short_inputs_rejected(n):
    with pytest.raises(InvalidCiphertextException):
        ct.deserialize(b"\x01" * n)


def test_non_ascii_key_id_rejected():
    data = bytearray(ct.serialize(ct.CiphertextBlob("abcd", 1, bytes(12), bytes(16))))
    data[2] = 0xFF
    with pytest.raises(InvalidCiphertextException):
        ct.deserialize(bytes(data))
