"""Encryption context: canonical AAD known answers and validation limits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kms import context as ec
from kms.errors import ValidationException

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "kms_context.json")
                     .read_text(encoding="utf-8"))


@pytest.mark.parametrize("v", VECTORS["vectors"], ids=lambda v: v["description"])
def test_canonical_vectors(v):
    assert ec.canonical(v["context"]).hex() == v["canonical_hex"]


def test_spelled_out_encoding():
    # 0x01 ‖ len("a") ‖ "a" ‖ len("1") ‖ "1" ‖ len("b") ‖ "b" ‖ len("") , written by hand.
    assert ec.canonical({"b": "", "a": "1"}) == bytes.fromhex(
        "01" "00000001" "61" "00000001" "31" "00000001" "62" "00000000")


def test_order_does_not_matter_and_encoding_is_injective():
    assert ec.canonical({"x": "1", "y": "2"}) == ec.canonical({"y": "2", "x": "1"})
    assert ec.canonical({"ab": "c"}) != ec.canonical({"a": "bc"})
    assert ec.canonical(None) == ec.canonical({}) == b"\x01"


def test_sorted_by_utf8_bytes():
    out = ec.canonical({"\u00e9": "", "z": ""})
    assert out.index(b"z") < out.index("\u00e9".encode())


@pytest.mark.parametrize("bad", [
    {"k": 1}, {1: "v"}, {"": "v"}, {"k": b"v"}, ["k", "v"], {"k": "\ud800"},
])
def test_invalid_contexts(bad):
    with pytest.raises(ValidationException):
        ec.validate(bad)


def test_size_limit_counts_utf8_bytes():
    ec.validate({"k": "v" * (8192 - 1)})
    with pytest.raises(ValidationException):
        ec.validate({"k": "v" * 8192})
    with pytest.raises(ValidationException):
        ec.validate({"k": "\u00e9" * 4096})      # 8192 bytes of value + 1 of key
