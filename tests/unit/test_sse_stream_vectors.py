"""Known-answer and must-fail vectors for coffer-sse/1 (tests/vectors/sse_stream_v1.json).

The vectors were produced by ``_reference_seal`` below, a one-shot restatement of the spec
written straight on AESGCM + HKDF and sharing no code with the codec. Vector files are
append-only: ``python -m tests.unit.test_sse_stream_vectors`` prints the document for a new
file and never overwrites an existing one.
"""
from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.sse import stream
from gateway.sse.stream import (SegmentDecryptor, SegmentEncryptor, StreamAuthenticationError,
                                StreamParams, new_stream_params, segment_count)

VECTOR_FILE = Path(__file__).resolve().parents[1] / "vectors" / "sse_stream_v1.json"
HEX_UP_TO = 64                       # plaintexts up to this size keep their full ciphertext


def plaintext(n: int) -> bytes:
    """Byte i of every vector plaintext is i mod 251 (a period that no segment size shares)."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def _reference_seal(data_key: bytes, salt: bytes, prefix: bytes, seg: int, pt: bytes, aad: bytes,
                    last_flags: dict[int, int] | None = None) -> list[bytes]:
    """The spec, one segment at a time; ``last_flags`` forges the flag of chosen segments."""
    key = HKDF(hashes.SHA256(), 32, salt, b"coffer-sse/1").derive(data_key)
    gcm = AESGCM(key)
    pieces = [pt[i:i + seg] for i in range(0, len(pt), seg)] or [b""]
    out = []
    for i, piece in enumerate(pieces):
        last = (last_flags or {}).get(i, int(i == len(pieces) - 1))
        nonce = prefix + struct.pack(">IB", i, last)
        out.append(gcm.encrypt(nonce, piece, b"coffer-sse/1" + aad))
    return out


# -- the vector document --------------------------------------------------------------------

DATA_KEY = bytes(range(0x00, 0x20))
SALT = bytes(range(0x40, 0x60))
PREFIX = bytes.fromhex("a0a1a2a3a4a5a6")
AAD = b"arn:aws:s3:::examplebucket/photos/2024/cat.jpg\x00part=3"
CASES = [  # name, segment size, plaintext size, aad
    ("64k-empty", 65536, 0, b""),
    ("64k-1", 65536, 1, b""),
    ("64k-65535", 65536, 65535, b""),
    ("64k-65536", 65536, 65536, b""),
    ("64k-65537", 65536, 65537, b""),
    ("64k-3seg-plus-5", 65536, 3 * 65536 + 5, b""),
    ("4k-3seg-plus-100-aad", 4096, 3 * 4096 + 100, AAD),
    ("4k-2seg-exact-aad", 4096, 2 * 4096, AAD),
    ("4k-empty-aad", 4096, 0, AAD),
    ("4k-17-aad", 4096, 17, AAD),
]
# Each mutation applies to the named valid case; every one must raise StreamAuthenticationError.
INVALID = [
    {"name": "flip-first-byte-segment-0", "case": "64k-3seg-plus-5", "flip": [0]},
    {"name": "flip-byte-in-segment-1", "case": "64k-3seg-plus-5", "flip": [65552 + 1000]},
    {"name": "flip-tag-of-segment-2", "case": "64k-3seg-plus-5", "flip": [3 * 65552 - 1]},
    {"name": "flip-last-byte-final-segment", "case": "64k-3seg-plus-5", "flip": [196676]},
    {"name": "flip-tag-of-empty-stream", "case": "64k-empty", "flip": [15]},
    {"name": "drop-segment-1", "case": "64k-3seg-plus-5", "segments": [0, 2, 3]},
    {"name": "drop-final-segment", "case": "64k-3seg-plus-5", "segments": [0, 1, 2]},
    {"name": "drop-final-segment-size-adjusted", "case": "64k-3seg-plus-5",
     "segments": [0, 1, 2], "total_segments": 3},
    {"name": "reorder-segments-0-1", "case": "64k-3seg-plus-5", "segments": [1, 0, 2, 3]},
    {"name": "reorder-4k-segments-1-2", "case": "4k-3seg-plus-100-aad", "segments": [0, 2, 1, 3]},
    {"name": "duplicate-segment-0", "case": "4k-3seg-plus-100-aad", "segments": [0, 0, 1, 2, 3]},
    {"name": "truncate-final-segment-1-byte", "case": "64k-3seg-plus-5", "truncate": 1},
    {"name": "truncate-into-tag-of-1-byte-stream", "case": "64k-1", "truncate": 10},
    {"name": "empty-stream-without-its-segment", "case": "64k-empty", "truncate": 16},
    {"name": "append-byte", "case": "64k-3seg-plus-5", "append_hex": "00"},
    {"name": "append-byte-to-empty-stream", "case": "64k-empty", "append_hex": "00"},
    {"name": "append-extra-segment", "case": "4k-3seg-plus-100-aad", "segments": [0, 1, 2, 3, 3]},
    {"name": "metadata-claims-one-more-segment", "case": "64k-65536", "total_segments": 2},
    {"name": "metadata-claims-one-fewer-segment", "case": "64k-65537", "total_segments": 1},
    {"name": "wrong-aad", "case": "4k-3seg-plus-100-aad",
     "aad_hex": (AAD[:-1] + b"4").hex()},
    {"name": "missing-aad", "case": "4k-3seg-plus-100-aad", "aad_hex": ""},
    {"name": "wrong-key", "case": "64k-65537", "data_key_hex": bytes(range(1, 33)).hex()},
    {"name": "wrong-salt", "case": "64k-65537", "salt_hex": bytes(range(0x41, 0x61)).hex()},
    {"name": "wrong-nonce-prefix", "case": "64k-65537", "nonce_prefix_hex": "a0a1a2a3a4a5a7"},
    {"name": "last-flag-forced-on-segment-0", "case": "64k-3seg-plus-5",
     "forge_last_flags": {"0": 1}},
    {"name": "last-flag-missing-on-final-segment", "case": "64k-3seg-plus-5",
     "forge_last_flags": {"3": 0}},
    {"name": "last-flag-missing-on-empty-stream", "case": "64k-empty",
     "forge_last_flags": {"0": 0}},
]


def build_document() -> dict:
    key = HKDF(hashes.SHA256(), 32, SALT, b"coffer-sse/1").derive(DATA_KEY)
    valid = []
    for name, seg, n, aad in CASES:
        segs = _reference_seal(DATA_KEY, SALT, PREFIX, seg, plaintext(n), aad)
        ct = b"".join(segs)
        rec = {"name": name, "segment_size": seg, "plaintext_size": n, "aad_hex": aad.hex(),
               "segments": len(segs), "ciphertext_size": len(ct),
               "ciphertext_sha256": hashlib.sha256(ct).hexdigest(),
               "tags_hex": [s[-16:].hex() for s in segs]}
        if n <= HEX_UP_TO:
            rec["ciphertext_hex"] = ct.hex()
        valid.append(rec)
    return {
        "_source": "coffer-sse/1 (gateway/sse/stream.py docstring); produced by "
                   "tests/unit/test_sse_stream_vectors.py::_reference_seal",
        "format": "coffer-sse/1",
        "plaintext": "byte i is i mod 251",
        "data_key_hex": DATA_KEY.hex(),
        "salt_hex": SALT.hex(),
        "nonce_prefix_hex": PREFIX.hex(),
        "segment_key_hex": key.hex(),
        "meta_64k": {"format": "coffer-sse/1", "segment_size": 65536,
                     "salt": base64.b64encode(SALT).decode(),
                     "nonce_prefix": base64.b64encode(PREFIX).decode()},
        "valid": valid,
        "invalid": INVALID,
    }


# -- tests ----------------------------------------------------------------------------------

# Before the file exists (only while generating it) the tests run against the reference.
DOC = json.loads(VECTOR_FILE.read_text()) if VECTOR_FILE.exists() else build_document()
VALID = {v["name"]: v for v in DOC["valid"]}


def _params(rec: dict, **over: str) -> StreamParams:
    return StreamParams(salt=bytes.fromhex(over.get("salt_hex", DOC["salt_hex"])),
                        nonce_prefix=bytes.fromhex(over.get("nonce_prefix_hex",
                                                            DOC["nonce_prefix_hex"])),
                        segment_size=rec["segment_size"])


def _encrypt(rec: dict, splits: random.Random | None = None) -> bytes:
    queue = [bytes.fromhex(DOC["salt_hex"]), bytes.fromhex(DOC["nonce_prefix_hex"])]
    params = new_stream_params(rand=lambda n: queue.pop(0), segment_size=rec["segment_size"])
    enc = SegmentEncryptor(bytes.fromhex(DOC["data_key_hex"]), params,
                           bytes.fromhex(rec["aad_hex"]))
    pt, out, i = plaintext(rec["plaintext_size"]), bytearray(), 0
    while i < len(pt):
        step = splits.randint(1, 3 * rec["segment_size"]) if splits else len(pt)
        out += enc.update(pt[i:i + step])
        i += step
    return bytes(out + enc.finalize())


def _decrypt(ct: bytes, rec: dict, splits: random.Random | None = None, **over) -> bytes:
    dec = SegmentDecryptor(bytes.fromhex(over.get("data_key_hex", DOC["data_key_hex"])),
                           _params(rec, **over), bytes.fromhex(over.get("aad_hex", rec["aad_hex"])),
                           total_segments=over.get("total_segments", rec["segments"]))
    out, i = bytearray(), 0
    while i < len(ct):
        step = splits.randint(1, 3 * rec["segment_size"]) if splits else len(ct)
        out += dec.update(ct[i:i + step])
        i += step
    return bytes(out + dec.finalize())


def test_document_is_what_the_reference_produces():
    assert VECTOR_FILE.exists()
    assert DOC == json.loads(json.dumps(build_document()))


def test_segment_key_and_nonce_layout():
    """Open the codec's segments with the vector's segment key and hand-built nonces."""
    rec = VALID["4k-3seg-plus-100-aad"]
    ct = _encrypt(rec)
    gcm = AESGCM(bytes.fromhex(DOC["segment_key_hex"]))
    stride, pt = rec["segment_size"] + 16, plaintext(rec["plaintext_size"])
    for i in range(rec["segments"]):
        nonce = bytes.fromhex(DOC["nonce_prefix_hex"]) + i.to_bytes(4, "big") + bytes(
            [i == rec["segments"] - 1])
        got = gcm.decrypt(nonce, ct[i * stride:(i + 1) * stride], b"coffer-sse/1" + AAD)
        assert got == pt[i * rec["segment_size"]:(i + 1) * rec["segment_size"]]
    assert _params(VALID["64k-1"]).to_meta() == DOC["meta_64k"]
    assert StreamParams.from_meta(DOC["meta_64k"]) == _params(VALID["64k-1"])


@pytest.mark.parametrize("name", list(VALID))
def test_golden_encrypt(name):
    rec = VALID[name]
    for splits in (None, random.Random(name)):
        ct = _encrypt(rec, splits)
        assert len(ct) == rec["ciphertext_size"] == stream.ciphertext_size(
            rec["plaintext_size"], rec["segment_size"])
        assert hashlib.sha256(ct).hexdigest() == rec["ciphertext_sha256"]
        stride = rec["segment_size"] + 16
        tags = [ct[min(len(ct), (i + 1) * stride) - 16:min(len(ct), (i + 1) * stride)].hex()
                for i in range(rec["segments"])]
        assert tags == rec["tags_hex"]
        if "ciphertext_hex" in rec:
            assert ct.hex() == rec["ciphertext_hex"]


@pytest.mark.parametrize("name", list(VALID))
def test_golden_decrypt(name):
    rec = VALID[name]
    ct = b"".join(_reference_seal(bytes.fromhex(DOC["data_key_hex"]),
                                  bytes.fromhex(DOC["salt_hex"]),
                                  bytes.fromhex(DOC["nonce_prefix_hex"]), rec["segment_size"],
                                  plaintext(rec["plaintext_size"]), bytes.fromhex(rec["aad_hex"])))
    assert hashlib.sha256(ct).hexdigest() == rec["ciphertext_sha256"]
    assert segment_count(rec["plaintext_size"], rec["segment_size"]) == rec["segments"]
    for splits in (None, random.Random(name)):
        assert _decrypt(ct, rec, splits) == plaintext(rec["plaintext_size"])


def _mutated(inv: dict) -> tuple[bytes, dict, dict]:
    rec = VALID[inv["case"]]
    flags = {int(k): v for k, v in inv.get("forge_last_flags", {}).items()}
    segs = _reference_seal(bytes.fromhex(DOC["data_key_hex"]), bytes.fromhex(DOC["salt_hex"]),
                           bytes.fromhex(DOC["nonce_prefix_hex"]), rec["segment_size"],
                           plaintext(rec["plaintext_size"]), bytes.fromhex(rec["aad_hex"]), flags)
    ct = bytearray(b"".join(segs[i] for i in inv.get("segments", range(len(segs)))))
    for off in inv.get("flip", []):
        ct[off] ^= 0x01
    if "truncate" in inv:
        del ct[len(ct) - inv["truncate"]:]
    ct += bytes.fromhex(inv.get("append_hex", ""))
    over = {k: inv[k] for k in ("aad_hex", "data_key_hex", "salt_hex", "nonce_prefix_hex",
                                "total_segments") if k in inv}
    return bytes(ct), rec, over


@pytest.mark.parametrize("inv", DOC["invalid"], ids=[v["name"] for v in DOC["invalid"]])
def test_must_fail(inv):
    ct, rec, over = _mutated(inv)
    for splits in (None, random.Random(inv["name"])):
        with pytest.raises(StreamAuthenticationError) as err:
            _decrypt(ct, rec, splits, **over)
        assert str(err.value) == "coffer-sse/1 stream failed authentication"
        # Opaque: no InvalidTag or other detail shows through the chain.
        assert err.value.__cause__ is None
        assert err.value.__context__ is None or err.value.__suppress_context__


@pytest.mark.parametrize("inv", DOC["invalid"], ids=[v["name"] for v in DOC["invalid"]])
def test_must_fail_releases_only_verified_plaintext(inv):
    """Whatever came out before the failure is a true prefix and never the whole object."""
    ct, rec, over = _mutated(inv)
    params = _params(rec, **over)
    dec = SegmentDecryptor(bytes.fromhex(over.get("data_key_hex", DOC["data_key_hex"])), params,
                           bytes.fromhex(over.get("aad_hex", rec["aad_hex"])),
                           total_segments=over.get("total_segments", rec["segments"]))
    released = bytearray()
    with pytest.raises(StreamAuthenticationError):
        for i in range(0, len(ct), 1000):
            released += dec.update(ct[i:i + 1000])
        released += dec.finalize()
    pt = plaintext(rec["plaintext_size"])
    assert released == pt[:len(released)]
    assert len(released) < max(1, len(pt)) or rec["plaintext_size"] == 0
    with pytest.raises(RuntimeError):        # a failed decryptor is spent
        dec.update(b"")


def test_flip_every_segment_at_head_middle_and_tag():
    rec = VALID["4k-3seg-plus-100-aad"]
    good, _, _ = _mutated({"case": rec["name"]})
    stride = rec["segment_size"] + 16
    for i in range(rec["segments"]):
        end = min(len(good), (i + 1) * stride)
        for off in (i * stride, (i * stride + end) // 2, end - 16, end - 1):
            bad = bytearray(good)
            bad[off] ^= 0x80
            with pytest.raises(StreamAuthenticationError):
                _decrypt(bytes(bad), rec)


def test_fallback_without_encrypt_into(monkeypatch):
    monkeypatch.setattr(stream, "_HAS_INTO", False)
    rec = VALID["4k-3seg-plus-100-aad"]
    ct = _encrypt(rec, random.Random(1))
    assert hashlib.sha256(ct).hexdigest() == rec["ciphertext_sha256"]
    assert _decrypt(ct, rec, random.Random(2)) == plaintext(rec["plaintext_size"])
    bad = bytearray(ct)
    bad[5000] ^= 1
    with pytest.raises(StreamAuthenticationError):
        _decrypt(bytes(bad), rec)


if __name__ == "__main__":
    if VECTOR_FILE.exists() and "--print" not in sys.argv:
        sys.exit(f"{VECTOR_FILE} exists; vector files are append-only (use --print)")
    text = json.dumps(build_document(), indent=1) + "\n"
    if VECTOR_FILE.exists():
        print(text, end="")
    else:
        VECTOR_FILE.write_text(text)
