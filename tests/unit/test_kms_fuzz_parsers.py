"""Property-based fuzzing of the KMS parsers an unauthenticated client's bytes reach (issue 11,
Tests): the ciphertext blob, the encryption context, grant tokens and grant constraints. Each
runs the parser directly over 10,000 seeded cases (``tests.kms_fuzz_values``) and asserts that
only the layer's typed error (a ``KMSError``: InvalidCiphertextException, ValidationException,
InvalidGrantTokenException) ever comes out, never another exception.
"""
from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given

from kms import ciphertext as ct
from kms import context as ec
from kms.errors import InvalidCiphertextException, KMSError, ValidationException
from kms.grants import GrantOps, _constraints_hold, _constraints_imply, validate_grant_tokens
from kms.model import KeySpec
from kms.service import KMS
from tests.kms_fuzz_values import FUZZ, SEEDS, jsonish, text, value

pytestmark = pytest.mark.fuzz


def _blob_bytes(seed: int) -> bytes:
    """Arbitrary bytes, or bytes shaped like a blob header with arbitrary fields."""
    rng = random.Random(seed)
    if rng.random() < 0.3:
        return rng.randbytes(rng.randrange(80))
    kid = rng.choice((b"", b"k", b"1234abcd-12ab-34cd-56ef-1234567890ab", b"\xff\xfe",
                      rng.randbytes(rng.randrange(64)), b"mrk-" + b"a" * 32))
    n = len(kid) if rng.random() < 0.8 else rng.randrange(256)
    version = rng.choice((0, 1, 2, 2**32 - 1))
    return (bytes([rng.choice((0, 1, 1, 1, 2, 255)), n]) + kid + struct.pack(">I", version)
            + rng.randbytes(rng.choice((0, 11, 12, 27, 28, 29, 64))))


@FUZZ
@given(SEEDS)
def test_ciphertext_deserialize_only_raises_invalid_ciphertext(seed):
    data = _blob_bytes(seed)
    try:
        blob = ct.deserialize(data)
    except InvalidCiphertextException:
        return
    # A blob that parses re-serializes to the same bytes (no silent reinterpretation).
    assert ct.serialize(blob) == data
    assert blob.key_version >= 1 and len(blob.nonce) == ct.NONCE_SIZE


@FUZZ
@given(SEEDS)
def test_blob_parameter_only_raises_kms_errors(seed):
    """The CiphertextBlob parameter as the library receives it: bytes, or any JSON value."""
    rng = random.Random(seed)
    data = _blob_bytes(seed)
    arg = rng.choice((data, bytearray(data), memoryview(data), jsonish(rng),
                      b"\x01" * 6145))
    try:
        KMS._blob(arg)
    except KMSError:
        pass


def _context(seed: int):
    rng = random.Random(seed)
    if rng.random() < 0.6:      # a map of strings, mostly: canonicalisation is reached
        return {text(rng): text(rng) if rng.random() < 0.9 else jsonish(rng)
                for _ in range(rng.randrange(6))}
    return jsonish(rng)


@FUZZ
@given(SEEDS)
def test_encryption_context_only_raises_validation(seed):
    try:
        ctx = ec.validate(_context(seed))
    except ValidationException:
        return
    raw = ec.canonical(ctx)
    assert raw[0] == ec.VERSION
    assert ec.canonical(dict(reversed(list(ctx.items())))) == raw    # order never matters


@FUZZ
@given(SEEDS, SEEDS)
def test_canonical_context_is_injective(s1, s2):
    try:
        a, b = ec.validate(_context(s1)), ec.validate(_context(s2 if s2 % 3 else s1))
    except ValidationException:
        return
    assert (ec.canonical(a) == ec.canonical(b)) == (a == b)


@FUZZ
@given(SEEDS)
def test_grant_tokens_only_raise_kms_errors(seed):
    rng = random.Random(seed)
    tokens = value(seed, near=(
        [text(rng) for _ in range(rng.randrange(12))],
        ["Y29mZmVyLWdyYW50LXRva2VuLzEAYWJjAHh5eg=="],      # well-formed
        ["Y29mZmVyLWdyYW50LXRva2VuLzEA"], ["=="], [""], ["\ud800"]))
    try:
        validate_grant_tokens(tokens)
    except KMSError:
        pass


class _Key:
    """Just what the constraint parser reads of a key."""

    class metadata:    # noqa: N801 - mirrors Key.metadata
        key_spec = KeySpec.SYMMETRIC_DEFAULT


@FUZZ
@given(SEEDS)
def test_grant_constraints_only_raise_validation(seed):
    rng = random.Random(seed)
    near = ({"EncryptionContextEquals": _context(seed)},
            {"EncryptionContextSubset": _context(seed), "EncryptionContextEquals": None},
            {"EncryptionContextSubset": _context(seed), text(rng): 1})
    try:
        GrantOps._check_constraints(_Key, value(seed, near))
    except ValidationException:
        pass


def _pairs(rng: random.Random) -> dict[str, str]:
    return {rng.choice("aAbc"): rng.choice("12") for _ in range(rng.randrange(4))}


def _constraints(rng: random.Random) -> dict | None:
    out = {name: _pairs(rng) for name in ("EncryptionContextEquals", "EncryptionContextSubset")
           if rng.random() < 0.5}
    return out if out or rng.random() < 0.5 else None


@FUZZ
@given(SEEDS)
def test_a_child_that_implies_its_parent_allows_no_more(seed):
    """_constraints_imply(child, parent) means every context the child allows, the parent
    allows: a delegated grant can never widen its parent (finding 4)."""
    rng = random.Random(seed)
    child, parent = _constraints(rng), _constraints(rng)
    implied = _constraints_imply(child, parent)
    for _ in range(8):
        context = _pairs(rng)
        if implied and _constraints_hold(child, context):
            assert _constraints_hold(parent, context), (child, parent, context)
