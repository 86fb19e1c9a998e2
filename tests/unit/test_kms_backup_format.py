"""coffer-kms-backup/1: the outer layer's known-answer and must-fail vectors
(tests/vectors/kms_backup_v1.json), the file rebuilt from the spec with pyca directly, and the
two parsers (header, payload framing) fuzzed: only the one opaque error ever comes out."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kms.backup import FORMAT, _pack, _unpack
from kms.crypto.backup import (BackupCryptoError, HeaderInfo, PassphraseProtector,
                               ScryptParams, read_header)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "kms_backup_v1.json").read_text())
GOLDEN = VECTORS["golden"]


@pytest.mark.parametrize("v", GOLDEN, ids=lambda v: v["description"])
def test_golden_opens_and_seals_byte_for_byte(v):
    data = bytes.fromhex(v["file_hex"])
    assert PassphraseProtector(v["passphrase"]).open(data).hex() == v["payload_hex"]
    rand = iter([bytes.fromhex(v["salt_hex"]), bytes.fromhex(v["nonce_hex"])])
    sealer = PassphraseProtector(v["passphrase"], rand=lambda n: next(rand),
                                 params=ScryptParams(v["log2_n"], v["r"], v["p"]))
    assert sealer.seal(bytes.fromhex(v["payload_hex"])).hex() == v["file_hex"]
    assert read_header(data) == HeaderInfo(0x01, scrypt=ScryptParams(v["log2_n"], v["r"],
                                                                     v["p"]))


@pytest.mark.parametrize("v", GOLDEN, ids=lambda v: v["description"])
def test_golden_independent_assembly(v):
    """The file from the docstring's pseudo-code, with scrypt and AESGCM straight from pyca."""
    salt, nonce = bytes.fromhex(v["salt_hex"]), bytes.fromhex(v["nonce_hex"])
    header = b"COFFERKB" + bytes([1, 1, v["log2_n"], v["r"], v["p"]]) + salt + nonce
    key = Scrypt(salt=salt, length=32, n=2 ** v["log2_n"], r=v["r"],
                 p=v["p"]).derive(v["passphrase"].encode())
    body = AESGCM(key).encrypt(nonce, bytes.fromhex(v["payload_hex"]), header)
    assert (header + body).hex() == v["file_hex"]


@pytest.mark.parametrize("v", VECTORS["invalid"], ids=lambda v: v["description"])
def test_invalid_vectors_are_refused_opaquely(v):
    with pytest.raises(BackupCryptoError) as exc:
        PassphraseProtector(GOLDEN[0]["passphrase"]).open(bytes.fromhex(v["file_hex"]))
    assert str(exc.value) == str(BackupCryptoError())


def test_wrong_passphrase_is_the_same_error():
    with pytest.raises(BackupCryptoError) as exc:
        PassphraseProtector("another passphrase").open(bytes.fromhex(GOLDEN[0]["file_hex"]))
    assert str(exc.value) == str(BackupCryptoError())


def test_writers_never_go_below_the_floor():
    for weak in (ScryptParams(14, 8, 1), ScryptParams(15, 4, 1), ScryptParams(15, 8, 0)):
        with pytest.raises(BackupCryptoError):
            PassphraseProtector("a long enough passphrase", params=weak)
    with pytest.raises(ValueError):
        PassphraseProtector("")


def test_payload_framing_round_trip_and_trailing_bytes():
    manifest = {"format": FORMAT, "x": 1}
    packed = _pack(manifest, b"\x01" * 49, b"db")
    assert _unpack(packed) == (manifest, b"\x01" * 49, b"db")
    for bad in (packed + b"\x00", packed[:-1], _pack({"format": "other"}, b"", b""),
                _pack(manifest, b"\x01" * 48, b"")):
        with pytest.raises(BackupCryptoError):
            _unpack(bad)


FUZZ = settings(max_examples=10_000, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
_GOLDEN_BYTES = bytes.fromhex(GOLDEN[0]["file_hex"])


def _mutations():
    # Random bytes rarely start with the magic; edits of the golden file reach every branch.
    n = len(_GOLDEN_BYTES)
    edit = st.builds(lambda i, v: _GOLDEN_BYTES[:i] + bytes([v]) + _GOLDEN_BYTES[i + 1:],
                     st.integers(0, n - 1), st.integers(0, 255))
    cut = st.builds(lambda i: _GOLDEN_BYTES[:i], st.integers(0, n))
    return st.one_of(st.binary(max_size=120), edit, cut,
                     st.builds(lambda tail: b"COFFERKB\x01\x02" + tail, st.binary(max_size=80)))


@pytest.mark.fuzz
@FUZZ
@given(_mutations())
def test_fuzz_read_header_raises_only_the_opaque_error(data):
    try:
        info = read_header(data)
    except BackupCryptoError:
        return
    assert info.protector in (1, 2)


@pytest.mark.fuzz
@FUZZ
@given(st.one_of(st.binary(max_size=120),
                 st.builds(lambda m, r, d, cut: (_pack(m, r, d) + b"\x00")[:cut],
                           st.sampled_from([{"format": FORMAT}, {"format": "other"}, {}]),
                           st.sampled_from([b"", b"\x01" * 48, b"\x01" * 49]),
                           st.binary(max_size=16), st.integers(0, 200))))
def test_fuzz_payload_framing_raises_only_the_opaque_error(payload):
    try:
        manifest, root, db = _unpack(payload)
    except BackupCryptoError:
        return
    assert manifest["format"] == FORMAT and len(root) in (0, 49)
