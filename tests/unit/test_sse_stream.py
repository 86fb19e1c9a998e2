"""coffer-sse/1 codec: parameters and metadata, streaming in any split, ranges, misuse.

Golden and must-fail vectors live in test_sse_stream_vectors.py.
"""
from __future__ import annotations

import ast
import os
import random
from pathlib import Path

import pytest

from gateway.sse import stream
from gateway.sse.stream import (MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, RangePlan, SegmentDecryptor,
                                SegmentEncryptor, SSEError, StreamAuthenticationError,
                                StreamMetadataError, StreamParams, ciphertext_size,
                                new_stream_params, plan_range, segment_count)

KEY = bytes(range(32))
AAD = b"bucket/key\x00part=1"


def _counter_rand():
    state = {"n": 0}

    def rand(n: int) -> bytes:
        state["n"] += 1
        return bytes([state["n"]]) * n
    return rand


def encrypt(params: StreamParams, pt: bytes, rng: random.Random, aad: bytes = AAD,
            max_step: int | None = None) -> bytes:
    enc = SegmentEncryptor(KEY, params, aad)
    out, i = bytearray(), 0
    max_step = max_step or 3 * params.segment_size
    while i < len(pt):
        step = rng.randint(0, max_step)
        out += enc.update(pt[i:i + step])
        i += step
    return bytes(out + enc.finalize())


def decrypt(params: StreamParams, ct: bytes, size: int, rng: random.Random, aad: bytes = AAD,
            max_step: int | None = None) -> bytes:
    dec = SegmentDecryptor(KEY, params, aad,
                           total_segments=segment_count(size, params.segment_size))
    out, i = bytearray(), 0
    max_step = max_step or 3 * params.segment_size
    while i < len(ct):
        step = rng.randint(0, max_step)
        out += dec.update(ct[i:i + step])
        i += step
    return bytes(out + dec.finalize())


# -- parameters and metadata ----------------------------------------------------------------

def test_new_stream_params_draws_salt_then_prefix():
    calls = []

    def rand(n):
        calls.append(n)
        return bytes([len(calls)]) * n
    p = new_stream_params(rand=rand, segment_size=5000)
    assert calls == [32, 7]
    assert p == StreamParams(salt=b"\x01" * 32, nonce_prefix=b"\x02" * 7, segment_size=5000)
    assert p.version == 1
    fresh = new_stream_params()
    assert len(fresh.salt) == 32 and len(fresh.nonce_prefix) == 7
    assert fresh.segment_size == 65536 and fresh != new_stream_params()


def test_meta_roundtrip_is_json_safe():
    p = new_stream_params(rand=_counter_rand(), segment_size=262144)
    meta = p.to_meta()
    assert meta == {"format": "coffer-sse/1", "segment_size": 262144,
                    "salt": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
                    "nonce_prefix": "AgICAgICAg=="}
    assert StreamParams.from_meta(meta) == p


@pytest.mark.parametrize("change", [
    {"format": "coffer-sse/2"},
    {"format": "coffer-sse/0"},
    {"format": None},
    {"extra": 1},
    {"salt": "!!!"},
    {"salt": "AQEB"},                           # valid base64, wrong length
    {"salt": 5},
    {"nonce_prefix": "AgICAgICAgI="},           # 8 bytes
    {"segment_size": 4095},
    {"segment_size": MAX_SEGMENT_SIZE + 1},
    {"segment_size": "65536"},
    {"segment_size": True},
    {"segment_size": 65536.0},
])
def test_from_meta_rejects(change):
    meta = new_stream_params(rand=_counter_rand()).to_meta()
    meta.update(change)
    with pytest.raises(StreamMetadataError):
        StreamParams.from_meta(meta)


def test_from_meta_rejects_missing_field_and_non_mapping():
    meta = new_stream_params().to_meta()
    del meta["nonce_prefix"]
    for bad in (meta, [], "coffer-sse/1", None):
        with pytest.raises(StreamMetadataError):
            StreamParams.from_meta(bad)
    assert issubclass(StreamMetadataError, SSEError)


def test_params_validation():
    ok = dict(salt=bytes(32), nonce_prefix=bytes(7))
    for seg in (MIN_SEGMENT_SIZE, 5000, 65536, MAX_SEGMENT_SIZE):
        assert StreamParams(**ok, segment_size=seg).segment_size == seg
    for bad in (dict(ok, version=2), dict(ok, salt=bytes(31)), dict(ok, nonce_prefix=bytes(8)),
                dict(ok, salt=bytearray(32)), dict(ok, segment_size=MIN_SEGMENT_SIZE - 1),
                dict(ok, segment_size=MAX_SEGMENT_SIZE + 1)):
        with pytest.raises(ValueError):
            StreamParams(**bad)
    with pytest.raises(ValueError):
        SegmentEncryptor(bytes(16), StreamParams(**ok))
    with pytest.raises(ValueError):
        SegmentDecryptor(bytes(31), StreamParams(**ok), total_segments=1)


# -- sizes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size,seg,segments", [
    (0, 65536, 1), (1, 65536, 1), (65535, 65536, 1), (65536, 65536, 1), (65537, 65536, 2),
    (3 * 65536 + 5, 65536, 4), (5 * 2**30, 65536, 81920), (12288, 4096, 3), (12289, 4096, 4),
])
def test_segment_count_and_ciphertext_size(size, seg, segments):
    assert segment_count(size, seg) == segments
    assert ciphertext_size(size, seg) == size + 16 * segments


def test_size_limits():
    with pytest.raises(ValueError):
        segment_count(-1, 65536)
    with pytest.raises(ValueError):
        segment_count(4096 * 2**32 + 1, 4096)
    assert segment_count(4096 * 2**32, 4096) == 2**32


# -- streaming ------------------------------------------------------------------------------

def test_roundtrip_random_sizes_and_splits():
    rng = random.Random(20240611)
    for seg in (4096, 5000, 65536):
        params = new_stream_params(segment_size=seg)
        sizes = [0, 1, seg - 1, seg, seg + 1, 2 * seg, 3 * seg + 7] + [
            rng.randrange(0, 6 * seg) for _ in range(12)]
        for size in sizes:
            pt = rng.randbytes(size)
            ct = encrypt(params, pt, rng)
            assert len(ct) == ciphertext_size(size, seg)
            assert ct == encrypt(params, pt, rng)        # deterministic given params
            assert decrypt(params, ct, size, rng) == pt
            if size < 3 * seg:
                assert decrypt(params, ct, size, rng, max_step=40) == pt


def test_byte_at_a_time():
    params = new_stream_params(segment_size=4096)
    pt = os.urandom(2 * 4096 + 3)
    rng = random.Random(5)
    ct = encrypt(params, pt, rng, max_step=1)
    assert decrypt(params, ct, len(pt), rng, max_step=1) == pt


def test_accepts_bytearray_memoryview_and_non_byte_buffers():
    import array
    params = new_stream_params(segment_size=4096)
    words = array.array("I", range(3000))                 # 12000 bytes, itemsize 4
    enc = SegmentEncryptor(KEY, params)
    ct = enc.update(memoryview(bytearray(words.tobytes()))[:4]) + enc.update(
        memoryview(words)[1:]) + enc.finalize()
    dec = SegmentDecryptor(KEY, params, total_segments=3)
    assert dec.update(memoryview(bytes(ct))) + dec.finalize() == words.tobytes()


def test_last_full_segment_is_held_back():
    params = new_stream_params(segment_size=4096)
    enc = SegmentEncryptor(KEY, params)
    assert enc.update(bytes(4096)) == b""                   # might be the last segment
    assert len(enc.update(b"x")) == 4096 + 16               # now it is not
    assert len(enc.finalize()) == 1 + 16
    enc = SegmentEncryptor(KEY, params)
    assert enc.update(bytes(3 * 4096)) and len(enc.finalize()) == 4096 + 16


def test_empty_stream_is_one_tag():
    params = new_stream_params()
    enc = SegmentEncryptor(KEY, params)
    assert enc.update(b"") == b""
    ct = enc.finalize()
    assert len(ct) == 16
    dec = SegmentDecryptor(KEY, params, total_segments=1)
    assert dec.update(ct) == b"" and dec.finalize() == b""


def test_decryptor_releases_segments_as_they_verify_and_holds_the_final_one():
    params = new_stream_params(segment_size=4096)
    pt = os.urandom(2 * 4096 + 10)
    ct = encrypt(params, pt, random.Random(1))
    dec = SegmentDecryptor(KEY, params, AAD, total_segments=3)
    assert dec.update(ct[:4111]) == b""                      # one byte short of segment 0
    assert dec.update(ct[4111:4113]) == pt[:4096]
    assert dec.update(ct[4113:]) == pt[4096:8192]            # final segment not yet released
    assert dec.finalize() == pt[8192:]


def test_non_canonical_empty_final_segment_is_refused():
    """Only the empty stream ends in an empty segment, even one sealed under the right key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    params = new_stream_params(segment_size=4096)
    gcm = AESGCM(HKDF(hashes.SHA256(), 32, params.salt, b"coffer-sse/1").derive(KEY))
    seal = lambda i, last, pt: gcm.encrypt(  # noqa: E731
        params.nonce_prefix + i.to_bytes(4, "big") + bytes([last]), pt, b"coffer-sse/1" + AAD)
    ct = seal(0, 0, bytes(4096)) + seal(1, 1, b"")
    dec = SegmentDecryptor(KEY, params, AAD, total_segments=2)
    assert dec.update(ct) == bytes(4096)
    with pytest.raises(StreamAuthenticationError):
        dec.finalize()


def test_extension_fails_in_update_before_finalize():
    params = new_stream_params(segment_size=4096)
    ct = encrypt(params, bytes(4096), random.Random(1))
    dec = SegmentDecryptor(KEY, params, AAD, total_segments=1)
    assert dec.update(ct) == b""
    with pytest.raises(StreamAuthenticationError):
        dec.update(b"\x00")


def test_spent_objects_refuse_more_work():
    params = new_stream_params()
    enc = SegmentEncryptor(KEY, params)
    enc.finalize()
    with pytest.raises(RuntimeError):
        enc.update(b"x")
    with pytest.raises(RuntimeError):
        enc.finalize()
    dec = SegmentDecryptor(KEY, params, total_segments=1)
    with pytest.raises(StreamAuthenticationError):
        dec.finalize()                                       # nothing fed: truncated
    with pytest.raises(RuntimeError):
        dec.update(b"")


def test_decryptor_argument_checks():
    params = new_stream_params()
    for kw in (dict(total_segments=0), dict(total_segments=2, first_segment=2),
               dict(total_segments=2, first_segment=1, last_segment=0),
               dict(total_segments=2, last_segment=2), dict(total_segments=2**32 + 1)):
        with pytest.raises(ValueError):
            SegmentDecryptor(KEY, params, **kw)


def test_swapped_streams_fail():
    """A data file moved to another object (other aad, other params) does not decrypt."""
    a, b = new_stream_params(segment_size=4096), new_stream_params(segment_size=4096)
    pt = os.urandom(5000)
    ct = encrypt(a, pt, random.Random(1), aad=b"bkt/a")
    for params, aad in ((a, b"bkt/b"), (b, b"bkt/a")):
        with pytest.raises(StreamAuthenticationError):
            decrypt(params, ct, len(pt), random.Random(2), aad=aad)


# -- ranges ---------------------------------------------------------------------------------

def test_plan_range_fields():
    assert plan_range(3 * 65536 + 5, 65536, 0, 1) == RangePlan(
        first_segment=0, last_segment=0, total_segments=4, ct_start=0, ct_end=65552,
        skip_head=0, take=1)
    assert plan_range(3 * 65536 + 5, 65536, 65540, 3 * 65536 + 5) == RangePlan(
        first_segment=1, last_segment=3, total_segments=4, ct_start=65552,
        ct_end=3 * 65536 + 5 + 64, skip_head=4, take=2 * 65536 + 1)
    for bad in ((0, 0), (5, 5), (-1, 3), (0, 3 * 65536 + 6), (7, 3)):
        with pytest.raises(ValueError):
            plan_range(3 * 65536 + 5, 65536, *bad)
    with pytest.raises(ValueError):
        plan_range(0, 65536, 0, 1)


def _range_points(size: int, seg: int) -> list[int]:
    pts = {0, size}
    for b in range(0, size + 1, seg):
        pts.update(b + d for d in (-2, -1, 0, 1, 2))
    return sorted(p for p in pts if 0 <= p <= size)


@pytest.mark.parametrize("seg,size",
                         [(4096, 3 * 4096 + 100), (4096, 4 * 4096), (5000, 3 * 5000 + 1)])
def test_every_boundary_range(seg, size):
    """Every (start, end) over boundary-adjacent offsets, plus random ones, equals the slice."""
    params = new_stream_params(segment_size=seg)
    rng = random.Random(seg + size)
    pt = rng.randbytes(size)
    ct = encrypt(params, pt, rng)
    pts = _range_points(size, seg)
    pairs = [(s, e) for s in pts for e in pts if s < e]
    pairs += [tuple(sorted(rng.sample(range(size + 1), 2))) for _ in range(300)]
    for start, end in pairs:
        plan = plan_range(size, seg, start, end)
        assert plan.ct_end <= len(ct)
        assert plan.ct_end - plan.ct_start == (
            sum(min(seg, size - i * seg) + 16 for i in range(plan.first_segment,
                                                                plan.last_segment + 1)))
        body = ct[plan.ct_start:plan.ct_end]
        dec = SegmentDecryptor.for_range(KEY, params, plan, AAD)
        out, i = bytearray(), 0
        while i < len(body):
            step = rng.randint(1, 2 * seg)
            out += dec.update(body[i:i + step])
            i += step
        out += dec.finalize()
        assert out == pt[start:end], (start, end)
        # A plain decryptor over the same segments, then skip/take, agrees.
        plain = SegmentDecryptor(KEY, params, AAD, total_segments=plan.total_segments,
                                 first_segment=plan.first_segment, last_segment=plan.last_segment)
        whole = plain.update(body) + plain.finalize()
        assert whole[plan.skip_head:plan.skip_head + plan.take] == pt[start:end]


def test_every_prefix_and_suffix_range():
    """All [start, size) and [0, end) of a 3-segment-plus stream, fed in one piece."""
    seg, size = 4096, 3 * 4096 + 100
    params = new_stream_params(segment_size=seg)
    pt = os.urandom(size)
    ct = encrypt(params, pt, random.Random(4))
    for start, end in [(s, size) for s in range(size)] + [(0, e) for e in range(1, size + 1)]:
        plan = plan_range(size, seg, start, end)
        dec = SegmentDecryptor.for_range(KEY, params, plan, AAD)
        assert dec.update(ct[plan.ct_start:plan.ct_end]) + dec.finalize() == pt[start:end]


def test_range_reads_fail_on_tampering():
    params = new_stream_params(segment_size=4096)
    size = 4 * 4096 + 9
    pt = os.urandom(size)
    ct = encrypt(params, pt, random.Random(3))
    plan = plan_range(size, 4096, 5000, 9000)                # segments 1..2
    body = ct[plan.ct_start:plan.ct_end]
    cases = [
        body[:-1],                                          # short
        body + b"\x00",                                     # extra byte after the range
        ct[0:plan.ct_end - plan.ct_start],                  # segments 0..1 instead of 1..2
        body[4112:] + body[:4112],                          # swapped
        bytes([body[0] ^ 1]) + body[1:],
    ]
    for bad in cases:
        dec = SegmentDecryptor.for_range(KEY, params, plan, AAD)
        with pytest.raises(StreamAuthenticationError):
            dec.update(bad)
            dec.finalize()
    # The final segment read as a range still needs its last flag.
    tail = plan_range(size, 4096, size - 3, size)
    dec = SegmentDecryptor.for_range(KEY, params, tail, AAD)
    assert dec.update(ct[tail.ct_start:]) + dec.finalize() == pt[-3:]
    lying = SegmentDecryptor(KEY, params, AAD, total_segments=6, first_segment=4)
    with pytest.raises(StreamAuthenticationError):
        lying.update(ct[tail.ct_start:])
        lying.finalize()


# -- house rules ----------------------------------------------------------------------------

def test_codec_imports_only_stdlib_and_cryptography():
    tree = ast.parse(Path(stream.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert not roots & {"aiohttp", "kms", "storage", "gateway"}
    assert "cryptography" in roots


def test_spec_and_public_surface():
    assert stream.__doc__.lstrip().startswith("The ``coffer-sse/1``")
    assert "nonce_i" in stream.__doc__
    assert set(stream.__all__) <= set(dir(stream))
    assert issubclass(StreamAuthenticationError, SSEError)
